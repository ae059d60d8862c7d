"""Errors reach Sentry (config/error_reports.py) with the organization and the user as tags and no personal
data: the SDK sends its envelopes to a local receiver speaking Sentry's envelope endpoint."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk
from rest_framework.test import APIClient

from config.error_reports import sentry_init
from identity.services import tokens_for

pytestmark = pytest.mark.django_db

SECRET_BODY = "body-secret-7c1f"


class Receiver:
    """``POST /api/<project>/envelope/``: keeps each envelope, decompressed, and answers 200 as Sentry does."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                receiver.envelopes.append(raw)
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_address[1]}/42"

    def events(self) -> list[dict]:
        """The event items of every envelope (an envelope: a header line, then item header and payload lines)."""
        found = []
        for envelope in self.envelopes:
            lines = envelope.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.ROOT_URLCONF = "tests.error_reports.urls"
    receiver = Receiver()
    sentry_init(dsn=receiver.dsn, environment="test")
    yield receiver
    sentry_sdk.flush(timeout=5)
    sentry_sdk.init()  # no DSN: reporting off again
    receiver.close()


def test_an_error_reaches_sentry_with_the_organization_and_without_personal_data(receiver, owner_a, org_a):
    client = APIClient(raise_request_exception=False)
    access = tokens_for(user=owner_a)["access"]
    response = client.post(
        "/boom/?email=owner%40org-a.test",
        {"note": SECRET_BODY, "email": owner_a.email},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {access}",
        HTTP_X_ORGANIZATION=org_a.slug,
        HTTP_COOKIE="sessionid=cookie-secret",
    )
    assert response.status_code == 500
    assert sentry_sdk.get_client().should_send_default_pii() is False
    sentry_sdk.flush(timeout=10)
    assert receiver.arrived.wait(10), "no envelope reached the receiver"

    [event] = [event for event in receiver.events() if event.get("exception")]
    assert event["exception"]["values"][-1]["type"] == "Boom"
    assert event["tags"]["organization"] == org_a.slug
    assert event["tags"]["user"] == str(owner_a.pk)
    assert event["tags"]["request_id"] == response["X-Request-ID"]
    assert event["user"] == {"id": str(owner_a.pk)}
    request = event["request"]
    assert "data" not in request
    assert "cookies" not in request
    assert "query_string" not in request
    assert {name.lower() for name in request.get("headers", {})} <= {
        "accept",
        "content-type",
        "content-length",
        "user-agent",
        "host",
        "x-request-id",
    }
    everything = b"\n".join(receiver.envelopes)
    for secret in (SECRET_BODY.encode(), access.encode(), b"cookie-secret", owner_a.email.encode(), b"org-a.test"):
        assert secret not in everything, secret
