"""Co-pilot answers streaming for seconds while the rest of the API is used, against gunicorn as the Dockerfile
runs it (config/gunicorn.py: gthread). A stream holds one thread of one worker, never the process: the other
threads keep answering, as fast as without the streams."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from tests.assistant.fake_model import FakeModel, Reply

from .load import percentile, report
from .test_slow_clients import _line, _normal_requests

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

STREAMS = 4  # fewer than one process's threads (8): requests must still find free ones
STREAM_SECONDS = 4.0
NORMAL_P99_BOUND = 1.5


def _stream(port: int, headers: dict, conversation: int, out: list) -> None:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"content": "Tell me a long story"})
    conn.request(
        "POST",
        f"/api/v1/assistant/conversations/{conversation}/messages/?stream=true",
        body=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    events = response.read().decode().count("event: delta")
    conn.close()
    out.append((response.status, events, time.monotonic() - started))


def test_streams_do_not_hold_up_the_api(stack, tenant):
    model = FakeModel()
    pieces = 40
    model.then(*[Reply(text="word " * pieces, pieces=pieces, delay=STREAM_SECONDS / pieces) for _ in range(STREAMS)])
    try:
        app = stack(
            api_env={
                "WEB_CONCURRENCY": "1",  # one process: every stream and every request share its 8 threads
                "WEB_THREADS": "8",
                "ASSISTANT_BASE_URL": model.base_url,
                "ASSISTANT_MODEL": "scripted",
                "ASSISTANT_API_KEY": "test",
            }
        )
        port = app.api.port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/api/v1/assistant/conversations/", body="{}",
                     headers={**tenant.headers, "Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        conversation = json.loads(response.read())["id"]
        conn.close()
        quiet = _normal_requests(port, tenant.headers, 1.5)
        streamed: list = []
        threads = [
            threading.Thread(target=_stream, args=(port, tenant.headers, conversation, streamed))
            for _ in range(STREAMS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the streams have begun
        during = _normal_requests(port, tenant.headers, STREAM_SECONDS - 1.0)
        for thread in threads:
            thread.join(30)
    finally:
        model.close()

    stream_seconds = [seconds for _status, _events, seconds in streamed]
    report(
        f"Co-pilot streams: {STREAMS} answers streaming {STREAM_SECONDS:.0f} s each (gthread: 1 worker x 8 threads)",
        [
            _line("no streams", quiet),
            _line(f"while {STREAMS} streams run", during),
            f"  streams: {len(streamed)} done, {min(stream_seconds):.1f}-{max(stream_seconds):.1f} s each",
        ],
    )
    assert [(status, events) for status, events, _s in streamed] == [(200, pieces)] * STREAMS
    assert min(stream_seconds) >= STREAM_SECONDS * 0.9  # they really streamed that long
    assert all(status == 200 for status, _s in quiet + during)
    assert len(during) > 10
    assert percentile([s for _status, s in during], 0.99) < NORMAL_P99_BOUND
