"""Settings of webhook delivery, each read from ``django.conf.settings`` with the default below.

Every name can be set in ``config/settings.py`` (from the environment); tests override them with
``override_settings``. Read them through :func:`setting` at use time, never at import time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

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
    # A retry due within this many seconds is queued with a countdown; later ones are queued by the sweep.
    # Keep it well below the broker's visibility timeout.
    "WEBHOOK_MAX_COUNTDOWN_SECONDS": 600,
    # A due delivery whose message was sent this long ago without an attempt is queued again by the sweep.
    "WEBHOOK_REDISPATCH_AFTER_SECONDS": 300,
    # A replay re-delivers at most this many events; ask for a later ``since`` beyond that.
    "WEBHOOK_REPLAY_MAX_EVENTS": 10_000,
}


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
