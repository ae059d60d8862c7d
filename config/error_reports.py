"""Errors reported to Sentry when ``SENTRY_DSN`` is set (config/settings.py calls :func:`sentry_init`), with the
organization and the user as tags and no personal data:

- no default personal data (``send_default_pii`` stays at its default, off: no cookies, no user e-mail or address,
  no client IP; sentry-sdk 2.76 deprecates passing it, and its replacement, ``data_collection``, would switch the
  SDK's own scrubber of sensitive keys off);
- request bodies are never sent (``max_request_body_size="never"``), nor query strings;
- :func:`scrub` runs on every event last: it keeps only harmless request headers, drops the user but its id, and
  adds the tags ``organization`` (the slug) and ``user`` (the id) from the request or task being served
  (config/log.py), plus ``request_id``, so a report leads to its log lines.

Tests point the DSN at a local envelope receiver (tests/test_error_reports.py).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.types import Event

from . import log

# Request headers an error report keeps; everything else (Authorization, Cookie, X-API-Key, …) is dropped.
KEPT_HEADERS = frozenset({"accept", "content-type", "content-length", "user-agent", "host", "x-request-id"})


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float = 0.0, **options: Any) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=traces_sample_rate,
        integrations=[
            DjangoIntegration(),
            CeleryIntegration(),
            # Errors are reported as exceptions, not log lines; only warnings become breadcrumbs (an info line may
            # name a person). Task arguments are replaced by the SDK when personal data is off.
            LoggingIntegration(level=logging.WARNING, event_level=None),
        ],
        before_send=scrub,
        before_send_transaction=scrub,
        **options,
    )


def scrub(sent: Event, hint: dict[str, Any] | None = None) -> Event:
    event = cast(dict[str, Any], sent)
    request = event.get("request")
    if isinstance(request, dict):
        headers = request.get("headers") or {}
        request["headers"] = {name: value for name, value in headers.items() if name.lower() in KEPT_HEADERS}
        for field in ("data", "cookies", "query_string", "env"):
            request.pop(field, None)
    user = event.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    event.pop("user", None)
    tags = event.setdefault("tags", {})
    current = log.current_request.get()
    if current is not None:
        organization = log.organization_of(current)
        user_id = user_id or log.caller_of(current).get("user")
        api_key = log.caller_of(current).get("api_key")
        if api_key:
            tags["api_key"] = api_key
    else:
        values = log.context.get() or {}
        organization = values.get("organization")
    if organization:
        tags["organization"] = organization
    if user_id:
        tags["user"] = str(user_id)
        event["user"] = {"id": str(user_id)}
    request_id = log.current_request_id()
    if request_id:
        tags["request_id"] = request_id
    return sent
