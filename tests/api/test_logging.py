"""Each answer is logged once, by the request line (config/log.py): one record, one line, in DEBUG and under the
development server too; a 4xx is not repeated by ``django.request`` nor by the server's access line."""

from __future__ import annotations

import logging
import re
import threading
import urllib.error
import urllib.request

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.db import connections

from billing.models import Override
from billing.services import override_save

from ..conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def written(monkeypatch) -> list[str]:
    """The messages the configured log handlers write, one entry per line written (pytest's own capturing
    handlers left out): a record two handlers write is two lines."""
    lines: list[str] = []
    handle = logging.Handler.handle

    def counting(self, record):
        emitted = handle(self, record)
        if emitted and not type(self).__module__.startswith("_pytest"):
            lines.append(record.getMessage())
        return emitted

    monkeypatch.setattr(logging.Handler, "handle", counting)
    return lines


def _about(message: str, path: str) -> bool:
    """``message`` is about ``path`` itself (``Not Found: /x/``, ``"GET /x/ HTTP/1.1" 404 ...``), not a longer one."""
    return re.search(rf"{re.escape(path)}(?:\s|$)", message) is not None


def _lines_about(lines: list[str], path: str) -> list[str]:
    return [line for line in lines if _about(line, path)]


def _records_about(caplog, path: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if _about(record.getMessage(), path)]


def test_each_4xx_is_logged_once(org_a, as_owner_a, member, settings, caplog, written):
    """In DEBUG, Django's own console handler wrote every 4xx a second time, next to the root handler's line."""
    settings.DEBUG = True  # as scripts/run: Django's debug-only handler is live
    _user, viewer = member(org_a, "viewer")
    override_save(override=Override(organization=org_a, limit="api_calls_per_minute", limit_value=1000), actor=None)
    answers = {
        "/api/v1/leads/987654/": (as_owner_a.get, 404),
        "/api/v1/leads/": (as_owner_a.post, 400),
        "/api/v1/contacts/": (client_for(None, org_a).get, 401),
        "/api/v1/companies/": (viewer.post, 403),
    }
    caplog.set_level(logging.INFO)
    for path, (call, status) in answers.items():
        assert call(path, {}).status_code == status

    for path, (_call, status) in answers.items():
        records = _records_about(caplog, path)
        assert [(record.name, record.fields["status"]) for record in records] == [("config.request", status)], path
        assert len(_lines_about(written, path)) == 1, _lines_about(written, path)


def test_the_development_server_logs_a_4xx_once_and_other_answers_once(caplog, written):
    """Under runserver the access line (django.server) was a second line for every answer."""
    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler, ipv6=False)
    server.set_app(WSGIHandler())  # what runserver serves (django.setup() again would reset the log handlers)
    port = server.server_address[1]

    def serve(requests: int) -> None:
        try:
            for _ in range(requests):
                server.handle_request()
        finally:
            connections.close_all()  # this thread's database connection

    thread = threading.Thread(target=serve, args=(2,))
    thread.start()
    caplog.set_level(logging.INFO)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/no-such-thing/", timeout=10)
    assert missing.value.code == 404
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).status == 200
    thread.join(10)
    server.server_close()

    assert len(_lines_about(written, "/api/v1/no-such-thing/")) == 1
    assert [record.name for record in _records_about(caplog, "/api/v1/no-such-thing/")] == ["config.request"]
    assert len(_lines_about(written, "/healthz")) == 1  # an answer that is not an error: one line too
