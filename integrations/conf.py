"""Settings of webhook delivery: each name is read from ``django.conf.settings`` when set there, else from the
environment variable of the same name, else the default below.

Deployments set them in the environment (README, "Configuration"): ``1``/``true``/``yes``/``on`` or
``0``/``false``/``no``/``off`` for flags, numbers for numbers, a comma list of seconds for the retry schedule; a
value that does not parse is an error naming the variable, at start-up (``manage.py check``) and at use. Tests
override them with ``override_settings``. Read them through :func:`setting` at use time, never at import time.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Loopback targets (127.0.0.0/8, ::1) are refused unless this is on: local development and tests only.
    "WEBHOOK_ALLOW_LOOPBACK": False,
    # Seconds to resolve and connect, and to wait for each read of the response.
    "WEBHOOK_CONNECT_TIMEOUT": 5.0,
    "WEBHOOK_READ_TIMEOUT": 10.0,
    # At most this much of a response is read; the delivery log keeps the first WEBHOOK_LOG_BODY_BYTES.
    "WEBHOOK_MAX_RESPONSE_BYTES": 64 * 1024,
    "WEBHOOK_LOG_BODY_BYTES": 2 * 1024,
    # Seconds between a failed attempt and the next one (the first attempt is immediate); once the schedule is
    # spent the delivery is failed. 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: 8 attempts over about 27.6 hours.
    "WEBHOOK_RETRY_SCHEDULE": (5, 300, 1800, 7200, 18000, 36000, 36000),
    # Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    "WEBHOOK_RETRY_JITTER": 0.2,
    # An endpoint whose every attempt failed for this long is disabled and the organization's owners are told.
    "WEBHOOK_DISABLE_AFTER_HOURS": 72,
    # After a secret rotation the previous secret keeps signing (a second signature) this long.
    "WEBHOOK_SECRET_ROTATION_GRACE_SECONDS": 24 * 3600,
    # Outbox rows relayed per transaction.
    "WEBHOOK_RELAY_BATCH_SIZE": 500,
    # Deliveries per delivery message: attempted by one worker one after the other, their outcomes committed
    # together (decision 0016). A worker killed mid-batch leaves up to this many requests to be sent again.
    "WEBHOOK_DELIVERY_BATCH_SIZE": 50,
    # A retry due within this many seconds is queued with a countdown; later ones are queued by the sweep.
    # Keep it well below the broker's visibility timeout.
    "WEBHOOK_MAX_COUNTDOWN_SECONDS": 600,
    # A due delivery whose message was sent this long ago without an attempt is queued again by the sweep.
    "WEBHOOK_REDISPATCH_AFTER_SECONDS": 300,
    # A replay re-delivers at most this many events; ask for a later ``since`` beyond that.
    "WEBHOOK_REPLAY_MAX_EVENTS": 10_000,
}


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("+-").isdigit() else float(text)


def _parse(name: str, raw: str, default: Any) -> Any:
    """``raw`` (an environment variable's value) as the type of ``default``."""
    text = raw.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if isinstance(default, int | float):
            value = _number(text)
            return float(value) if isinstance(default, float) else int(value)
        if isinstance(default, tuple):
            return tuple(_number(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        kind = {bool: "1 or 0", int: "a whole number", float: "a number", tuple: "a comma list of seconds"}
        raise ImproperlyConfigured(f"{name}={raw!r}: expected {kind[type(default)]}.") from None
    return text


def setting(name: str) -> Any:
    """The Django setting ``name`` if set, else the environment variable ``name`` if set and not blank, else the
    default."""
    if hasattr(settings, name):
        return getattr(settings, name)
    raw = os.environ.get(name, "")
    return _parse(name, raw, DEFAULTS[name]) if raw.strip() else DEFAULTS[name]
