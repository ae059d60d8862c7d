"""Logging (config/log.py): one line per request with its fields, the request id answered and carried into the
tasks the request queues, JSON or plain lines."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import urllib.request
import uuid

import pytest
import redis
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.db import connections

from config import log
from config.celery import app as celery_app
from config.mail import send_email_task
from identity.models import User

from .conftest import TEST_BROKER_DB, _redis_url, committed
from .factories import make_user

pytestmark = pytest.mark.django_db


def request_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "config.request"]


def test_one_line_per_request_with_its_fields(as_owner_a, owner_a, org_a, caplog):
    caplog.set_level(logging.INFO)
    response = as_owner_a.get("/api/v1/leads/987654/")
    assert response.status_code == 404

    [record] = request_lines(caplog)
    fields = record.fields
    assert fields["request_id"] == response["X-Request-ID"]
    assert len(fields["request_id"]) == 32
    assert fields["organization"] == org_a.slug
    assert fields["user"] == owner_a.pk
    assert "api_key" not in fields
    assert fields["method"] == "GET"
    assert fields["route"] == "/api/v1/leads/{pk}/"
    assert fields["status"] == 404
    assert fields["duration_ms"] > 0
    assert fields["queries"] >= 1

    line = json.loads(log.JsonFormatter().format(record))
    assert {"time", "level", "logger", "message"} <= line.keys()
    assert {name: line[name] for name in fields} == fields


def test_an_api_key_is_logged_by_its_prefix_never_its_user(as_owner_a, api, caplog):
    created = as_owner_a.post("/api/v1/api-keys/", {"name": "logged", "scopes": {"crm.lead.view": "all"}})
    assert created.status_code == 201, created.content
    key = created.json()["secret"]
    caplog.set_level(logging.INFO)
    caplog.clear()

    assert api.get("/api/v1/leads/", HTTP_X_API_KEY=key).status_code == 200

    [record] = request_lines(caplog)
    assert record.fields["api_key"] == created.json()["prefix"]
    assert key.startswith(record.fields["api_key"])
    assert "user" not in record.fields


def test_the_callers_request_id_is_kept_when_sane(api, caplog):
    caplog.set_level(logging.INFO)
    given = "trace-" + uuid.uuid4().hex
    assert api.get("/healthz", HTTP_X_REQUEST_ID=given)["X-Request-ID"] == given
    replaced = api.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith a line break")["X-Request-ID"]
    assert replaced != "bad id\nwith a line break"
    assert [record.fields["request_id"] for record in request_lines(caplog)] == [given, replaced]
    assert request_lines(caplog)[0].fields["route"] == "/healthz"


@pytest.fixture
def served():
    """The API served by a real server in a thread: its writes commit, so what a request queues after its
    commit is published while the request is being answered, as in production."""
    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler, ipv6=False)
    server.set_app(WSGIHandler())

    def serve() -> None:
        try:
            server.handle_request()
        finally:
            connections.close_all()

    thread = threading.Thread(target=serve)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    thread.join(10)
    server.server_close()


def test_a_task_queued_by_a_request_carries_its_request_id_into_its_log_lines(served, monkeypatch, caplog):
    """The request id travels in the message's headers (before_task_publish); the task's records carry it
    (task_prerun), here run from the very message the request published."""
    user = committed(make_user, email=f"reset-{uuid.uuid4().hex[:8]}@example.test")
    queue = f"test-log-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(send_email_task, "queue", queue, raising=False)
    monkeypatch.setattr(send_email_task, "_exec_options", None, raising=False)
    celery_app.conf.task_always_eager = False  # published to the broker, as in production
    broker = redis.Redis.from_url(_redis_url(TEST_BROKER_DB), socket_timeout=5)
    try:
        request = urllib.request.Request(
            f"{served}/api/v1/auth/password/reset/",
            data=json.dumps({"email": user.email}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            request_id = response.headers["X-Request-ID"]
        [raw] = broker.lrange(queue, 0, -1)
    finally:
        celery_app.conf.task_always_eager = True
        broker.delete(queue)
        committed(lambda: User.objects.filter(pk=user.pk).delete())

    message = json.loads(raw)
    headers = message["headers"]
    assert headers["task"] == send_email_task.name
    assert headers[log.TASK_HEADER] == request_id

    caplog.set_level(logging.INFO)
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    send_email_task.apply(args, kwargs, headers=headers)  # as a worker runs the message

    task_records = [record for record in caplog.records if record.name.startswith("celery")]
    assert task_records, caplog.text
    log.ContextFilter().filter(task_records[-1])  # what the handler adds to every record
    assert task_records[-1].request_id == request_id
    assert json.loads(log.JsonFormatter().format(task_records[-1]))["request_id"] == request_id


def test_lines_are_json_unless_a_terminal_is_attached(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(log.formatter("auto", io.StringIO()), log.JsonFormatter)
    assert isinstance(log.formatter("auto", Terminal()), log.PlainFormatter)
    assert isinstance(log.formatter("json", Terminal()), log.JsonFormatter)
    assert isinstance(log.formatter("plain", io.StringIO()), log.PlainFormatter)

    record = logging.LogRecord("config.request", logging.INFO, __file__, 1, "GET /x/ 200", (), None)
    token = log.context.set({"request_id": "abc123abc123", "organization": "org-a"})
    try:
        log.ContextFilter().filter(record)
    finally:
        log.context.reset(token)
    plain = log.formatter("plain").format(record)
    assert "[abc123abc123] GET /x/ 200" in plain
    assert "\x1b" not in plain  # no escape codes
    assert json.loads(log.formatter("json").format(record))["organization"] == "org-a"
