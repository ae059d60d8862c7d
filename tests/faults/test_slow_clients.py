"""Slow clients while other requests are served, against gunicorn as the Dockerfile runs it (config/gunicorn.py:
threaded workers). Slow clients trickle their request a byte at a time, idle ones connect and send nothing;
meanwhile a normal client's requests must be answered as fast as without them.

For comparison the same is measured against sync workers (as the API was served before): three slow clients
hold all three workers, and every other request waits for them."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from .load import percentile, report
from .processes import Gunicorn

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

# More than twice the three that stopped the sync workers, and fewer than one process's threads: the kernel
# hands connections to the processes unevenly, so all of them may land on the same one.
TRICKLING = 5
IDLE = 2
SECONDS = 4.0
# A normal request while slow clients hold connections: as quick as usual, give or take a loaded machine.
NORMAL_P99_BOUND = 1.5


class SlowClients:
    """``trickling`` connections sending request headers one byte every 0.2 s, and ``idle`` ones sending
    nothing, until stopped."""

    def __init__(self, port: int, *, trickling: int, idle: int = 0):
        self.port, self.trickling, self.idle = port, trickling, idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlowClients:
        self._thread.start()
        time.sleep(0.3)  # connected, first bytes sent
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        sockets = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(self.trickling + self.idle)]
        trickling = sockets[: self.trickling]
        for sock in trickling:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while not self._stop.wait(0.2):
            for sock in trickling:
                try:
                    sock.sendall(b"a")
                except OSError:
                    pass
        for sock in sockets:
            sock.close()


def _normal_requests(port: int, headers: dict, seconds: float) -> list[tuple[int | None, float]]:
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/api/v1/leads/?page_size=5", headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            status = response.status
        except OSError:
            status = None
        answers.append((status, time.monotonic() - started))
        time.sleep(0.05)
    return answers


def _line(label: str, answers: list[tuple[int | None, float]]) -> str:
    seconds = [s for _status, s in answers]
    ok = sum(1 for status, _s in answers if status == 200)
    return (
        f"  {label:<34} {len(answers):>3} requests, {ok} x 200  p50 {percentile(seconds, 0.5) * 1000:5.0f} ms"
        f"  p99 {percentile(seconds, 0.99) * 1000:5.0f} ms  max {max(seconds) * 1000:5.0f} ms"
    )


def test_slow_clients_do_not_starve_the_api(stack, tenant, tmp_path):
    app = stack(api_env={"WEB_CONCURRENCY": "2", "WEB_THREADS": "32"})  # config/gunicorn.py's defaults
    port = app.api.port
    quiet = _normal_requests(port, tenant.headers, 1.5)
    slow = SlowClients(port, trickling=TRICKLING, idle=IDLE).start()
    try:
        during = _normal_requests(port, tenant.headers, SECONDS)
    finally:
        slow.stop()
    after = _normal_requests(port, tenant.headers, 1.0)
    timeouts = app.api.output().count("WORKER TIMEOUT")

    sync = Gunicorn(
        env=app.api.env, log=tmp_path / "sync.log", args=("--worker-class", "sync", "--workers", "3", "--threads", "1")
    ).start()
    try:
        _normal_requests(sync.port, tenant.headers, 0.5)  # warm
        slow = SlowClients(sync.port, trickling=3).start()
        release = threading.Timer(3.0, slow.stop)
        release.start()
        sync_during = _normal_requests(sync.port, tenant.headers, 2.5)
        release.join()
    finally:
        sync.close()

    report(
        f"Slow clients: {TRICKLING} trickling a request + {IDLE} idle connections for {SECONDS:.0f} s "
        "(gthread: 2 workers x 32 threads)",
        [
            _line("gthread, no slow clients", quiet),
            _line("gthread, with the slow clients", during),
            _line("gthread, after", after),
            f"  gunicorn worker timeouts: {timeouts}",
            _line("sync x 3 (before), 3 slow clients 3 s", sync_during),
        ],
    )

    assert all(status == 200 for status, _s in quiet + during + after)
    assert percentile([s for _status, s in during], 0.99) < NORMAL_P99_BOUND
    assert timeouts == 0
    assert max(s for _status, s in sync_during) > 2.0, "the comparison shows what sync workers did"
