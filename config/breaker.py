"""Back off from an unreachable server for a few seconds instead of paying its timeout on every call.

One :class:`Breaker` per server (``host:port`` of its URL) and process, shared by everything that talks to it:
the caches, the rate-limit counters, the sign-in lockout, idempotency keys and the Celery broker when it is the
same Redis. After a failure the breaker is *open* for ``REDIS_BACKOFF_SECONDS``: calls are refused at once
(:class:`Unavailable`) and each caller falls back (a cache miss, no limits, 503 …). Then one call is let
through as a probe; its success closes the breaker, its failure opens it again. The first failure of an
outage is logged with its traceback, the end of the outage once; skipped calls are not logged.

    with breaker_for(url).guard("rate limit counters", "serving without limits"):
        counts = script(...)

Timeouts bound what one failing call costs (``REDIS_TIMEOUT_SECONDS``); the breaker makes sure only one call
per process and backoff period pays it.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF_SECONDS = 5.0


class Unavailable(Exception):
    """The server is unreachable, or was skipped because it was a moment ago."""


class Breaker:
    def __init__(self, name: str):
        self.name = name
        self._open = False
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def backoff_seconds() -> float:
        return float(getattr(settings, "REDIS_BACKOFF_SECONDS", DEFAULT_BACKOFF_SECONDS))

    @property
    def is_open(self) -> bool:
        return self._open

    def allow(self) -> bool:
        """Whether to call the server now: always while closed; once per backoff period (a probe) while open."""
        if not self._open:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                return False
            self._retry_at = now + self.backoff_seconds()  # other callers keep skipping while the probe runs
            return True

    def failed(self, what: str = "", fallback: str = "") -> None:
        with self._lock:
            was_open, self._open = self._open, True
            self._retry_at = time.monotonic() + self.backoff_seconds()
        if not was_open:
            logger.warning(
                "%s unreachable (%s)%s; skipping it for %.0f s",
                what or "server",
                self.name,
                f": {fallback}" if fallback else "",
                self.backoff_seconds(),
                exc_info=True,
            )

    def succeeded(self) -> None:
        if self._open:
            with self._lock:
                was_open, self._open = self._open, False
            if was_open:
                logger.warning("%s reachable again", self.name)

    def reset(self) -> None:
        with self._lock:
            self._open, self._retry_at = False, 0.0

    @contextmanager
    def guard(self, what: str = "", fallback: str = "", errors: tuple[type[BaseException], ...] = (Exception,)):
        """Run the block unless the breaker is open; an error among ``errors`` opens it. Either way the caller
        gets :class:`Unavailable` (chained to the error) and falls back."""
        if not self.allow():
            raise Unavailable(self.name)
        try:
            yield
        except errors as exc:
            self.failed(what, fallback)
            raise Unavailable(self.name) from exc
        self.succeeded()


_breakers: dict[str, Breaker] = {}
_registry_lock = threading.Lock()


def server_of(url: str) -> str:
    """``host:port`` of a Redis URL (the database number does not matter: one server, one breaker)."""
    parts = urlsplit(url)
    if parts.scheme == "unix" or not parts.hostname:
        return parts.path or url
    return f"{parts.hostname}:{parts.port or 6379}"


def breaker_for(url: str) -> Breaker:
    name = server_of(url)
    breaker = _breakers.get(name)
    if breaker is None:
        with _registry_lock:
            breaker = _breakers.setdefault(name, Breaker(name))
    return breaker


def reset_all() -> None:
    """Close every breaker (tests, after they point a cache at a closed port)."""
    for breaker in list(_breakers.values()):
        breaker.reset()
