"""Brute-force protection for sign-in: failed attempts are counted in Redis, per account and per client IP.

``AUTH_LOCKOUT_MAX_FAILURES`` failures for one e-mail (or ``AUTH_LOCKOUT_IP_MAX_FAILURES`` from one IP) within
``AUTH_LOCKOUT_WINDOW_SECONDS`` lock sign-in for that e-mail (or from that IP) for a full window, counted from
the failure that reached the limit. While locked every attempt answers 429 ``account_locked`` with
``Retry-After`` and the password is not even checked, so guessing stops.

- Unknown e-mails are counted exactly like known ones: the answers never tell whether an account exists.
- A successful sign-in clears the account's counter, not the IP's: one valid account of their own must not let
  an attacker reset the counter of their address.
- The counters live in the ``control`` cache (keys do not depend on the schema) so every process sees the same
  numbers. When Redis is unreachable sign-in goes on without the lockout (fail open, logged), like the API
  rate limits, and the server is skipped for a few seconds (:mod:`config.breaker`); the per-IP ``auth``
  throttle and the password hasher's cost remain.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import caches

from config.breaker import Unavailable
from config.cache import control_cache

from .errors import AccountLocked


def _counters(*, email: str, ip: str) -> list[tuple[str, int]]:
    """(cache key, limit) of each counter a sign-in attempt for ``email`` from ``ip`` touches."""
    cache = caches["control"]
    digest = hashlib.sha256(email.encode()).hexdigest()  # no addresses in Redis, and a key of fixed length
    counters = [(cache.make_and_validate_key(f"signin:fail:email:{digest}"), settings.AUTH_LOCKOUT_MAX_FAILURES)]
    if ip:
        counters.append((cache.make_and_validate_key(f"signin:fail:ip:{ip}"), settings.AUTH_LOCKOUT_IP_MAX_FAILURES))
    return counters


def _client():
    return control_cache().redis_client()


def _guard(fallback: str):
    return control_cache().breaker.guard("sign-in failure counters", fallback)


def _retry_after(ttl: int) -> int:
    return ttl if ttl > 0 else settings.AUTH_LOCKOUT_WINDOW_SECONDS


def check(*, email: str, ip: str) -> None:
    """Raise :class:`AccountLocked` while sign-in for ``email`` or from ``ip`` is locked."""
    counters = _counters(email=email, ip=ip)
    try:
        with _guard("signing in without the lockout"):
            pipe = _client().pipeline(transaction=False)
            for key, _limit in counters:
                pipe.get(key)
                pipe.ttl(key)
            replies = pipe.execute()
    except Unavailable:
        return
    locked = [
        _retry_after(ttl)
        for (_key, limit), count, ttl in zip(counters, replies[::2], replies[1::2], strict=True)
        if count is not None and int(count) >= limit
    ]
    if locked:
        raise AccountLocked(retry_after=max(locked))


def record_failure(*, email: str, ip: str) -> None:
    """Count one failed attempt; raise :class:`AccountLocked` when this failure reached a limit."""
    counters = _counters(email=email, ip=ip)
    window = settings.AUTH_LOCKOUT_WINDOW_SECONDS
    try:
        with _guard("failure not counted"):
            client = _client()
            pipe = client.pipeline(transaction=False)
            for key, _limit in counters:
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            counts = pipe.execute()[::2]
            reached = [key for (key, limit), count in zip(counters, counts, strict=True) if count >= limit]
            for key in reached:
                client.expire(key, window)  # locked for a full window from now
    except Unavailable:
        return
    if reached:
        raise AccountLocked(retry_after=window)


def reset(*, email: str) -> None:
    """Forget the failed attempts for ``email`` (after a successful sign-in or password reset)."""
    key, _limit = _counters(email=email, ip="")[0]
    try:
        with _guard("counter not reset"):
            _client().delete(key)
    except Unavailable:
        pass
