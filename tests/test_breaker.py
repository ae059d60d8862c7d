"""One breaker per Redis server (config/breaker.py): after a failure every Redis user skips the server for
``REDIS_BACKOFF_SECONDS`` instead of paying its timeout again, then one call probes it.

The server here accepts connections and never answers, as a frozen (SIGSTOP) Redis does: the kernel completes
the handshake, so only the socket timeout ends a call. tests/faults/ does the same with a real Redis."""

from __future__ import annotations

import socket
import time

import pytest

from config import breaker as breakers
from config.breaker import Breaker, Unavailable, breaker_for, server_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen_redis(settings):
    """Both caches pointed at a server that never answers; yields its breaker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    settings.CACHES = {alias: {**config, "LOCATION": url} for alias, config in settings.CACHES.items()}
    yield breaker_for(url)
    listener.close()


def _timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def test_open_skips_then_lets_one_probe_through(monkeypatch, settings):
    settings.REDIS_BACKOFF_SECONDS = 5
    now = [100.0]
    monkeypatch.setattr(breakers.time, "monotonic", lambda: now[0])
    breaker = Breaker("test:1")
    assert breaker.allow()
    breaker.failed("test")
    assert breaker.is_open
    assert not breaker.allow()
    now[0] += 4.9
    assert not breaker.allow()
    now[0] += 0.2
    assert breaker.allow(), "one probe after the backoff"
    assert not breaker.allow(), "the others keep skipping while it runs"
    breaker.failed("test")  # the probe failed: another full backoff
    now[0] += 4.9
    assert not breaker.allow()
    now[0] += 0.2
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.is_open
    assert breaker.allow()
    assert breaker.allow()


def test_guard_turns_errors_into_unavailable_and_only_the_listed_ones_open_it():
    breaker = Breaker("test:2")
    with pytest.raises(ValueError, match="a bug"), breaker.guard(errors=(OSError,)):
        raise ValueError("a bug, not an outage")
    assert not breaker.is_open
    with pytest.raises(Unavailable), breaker.guard(errors=(OSError,)):
        raise ConnectionRefusedError()
    assert breaker.is_open
    with pytest.raises(Unavailable), breaker.guard():
        pytest.fail("an open breaker does not run the block")


def test_one_breaker_per_server_whatever_the_database_number():
    assert server_of("redis://127.0.0.1:6379/14") == server_of("redis://127.0.0.1:6379/0") == "127.0.0.1:6379"
    assert breaker_for("redis://127.0.0.1:6379/14") is breaker_for("redis://127.0.0.1:6379/0")
    assert breaker_for("redis://127.0.0.1:6380/0") is not breaker_for("redis://127.0.0.1:6379/0")


def test_every_redis_user_pays_one_timeout_then_skips(frozen_redis, settings, caplog):
    from django.core.cache import caches

    from billing import ratelimit
    from identity import lockout

    users = {
        "cache": lambda: caches["default"].get("anything"),
        "control cache": lambda: caches["control"].get_many(["a", "b"]),
        "rate limits": lambda: ratelimit.hit(principal="key:1", limits={"api_calls_per_minute": 10}),
        "sign-in lockout": lambda: lockout.check(email="someone@example.test", ip="192.0.2.1"),
    }
    timeout = settings.REDIS_TIMEOUT_SECONDS
    for name, use in users.items():
        frozen_redis.reset()
        first = _timed(use)
        assert frozen_redis.is_open, name
        skipped = [_timed(use) for _ in range(20)]
        assert timeout * 0.8 <= first < timeout * 3, f"{name}: the first call pays the timeout once ({first:.2f}s)"
        assert max(skipped) < 0.05, f"{name}: later calls skip the server ({max(skipped):.3f}s)"
    assert caplog.text.count("unreachable (127.0.0.1:") == len(users)  # logged once per outage, not per call
