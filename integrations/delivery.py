"""One attempt of one delivery: sign, send to the pinned address, log, and schedule what comes next.

An attempt holds the delivery's row lock (``SELECT … FOR UPDATE SKIP LOCKED``) from before the request until
its outcome is committed. A second message for the same delivery (a redelivered or duplicated task) skips it
while it is in flight; a worker that dies mid-request drops its connection, PostgreSQL releases the lock, and
the redelivered message attempts again. Receivers see the same ``webhook-id`` on every attempt.

Before taking the lock the worker records its claim (``claimed_at``, committed at once); the outcome clears
it. A claim that is set on an unlocked row belongs to a worker that died, and the beat sweep sends the delivery
again within a minute instead of waiting for the broker's visibility timeout (an hour) to bring the message
back (:func:`integrations.relay.deliveries_dispatch_due`).

Retry schedule (``WEBHOOK_RETRY_SCHEDULE``, each delay ±``WEBHOOK_RETRY_JITTER``): immediately, then after 5 s,
5 min, 30 min, 2 h, 5 h, 10 h and 10 h — 8 attempts over about 27.6 hours; then the delivery is ``failed``.
Only 2xx answers succeed; redirects are not followed. An endpoint whose attempts have all failed for
``WEBHOOK_DISABLE_AFTER_HOURS`` is disabled and the organization's owners are e-mailed.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import certifi
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Timeout

from config.tasks import queue_after_commit

from . import signing, ssrf
from .choices import DeliveryStatus, DisabledReason
from .conf import setting
from .errors import InvalidWebhookUrl, UnsafeUrl
from .models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

USER_AGENT = "CRM-Webhooks/1.0"
# A scheduled message may arrive this early (clocks of the sending and the running host differ).
EARLY_TOLERANCE = timedelta(seconds=2)
POOLS_PER_PROCESS = 64
# Trust store for https targets (tests point this at their own CA).
CA_BUNDLE: str | None = None


# --- the request body ---


def _iso(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope(event: OutboxEvent) -> dict:
    """The webhook body of ``event`` (see ``integrations.events.envelope_schema``)."""
    actor = None
    if event.actor_id is not None or event.actor_label:
        actor = {"id": event.actor_id, "label": event.actor_label}
    return {
        "id": str(event.id),
        "type": event.type,
        "timestamp": _iso(event.occurred_at),
        "subject": {"type": event.subject_type, "id": event.subject_id},
        "actor": actor,
        "data": event.payload,
    }


def body_of(event: OutboxEvent) -> bytes:
    return json.dumps(envelope(event), separators=(",", ":"), ensure_ascii=False).encode()


def signing_secrets(endpoint: WebhookEndpoint, *, now=None) -> list[str]:
    """The current secret, and the previous one while its rotation grace lasts."""
    now = now or timezone.now()
    found = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        found.append(endpoint.previous_secret)
    return found


# --- HTTP ---


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    status: int | None = None
    latency_ms: int | None = None
    body: str = ""
    error: str = ""


_pools: OrderedDict[tuple, HTTPConnectionPool] = OrderedDict()


def _pool(pinned: ssrf.PinnedTarget) -> HTTPConnectionPool:
    """A keep-alive pool per (scheme, address, port, host name) in this process."""
    target = pinned.target
    key = (target.scheme, str(pinned.address), target.port, target.host)
    pool = _pools.get(key)
    if pool is not None:
        _pools.move_to_end(key)
        return pool
    timeout = Timeout(connect=float(setting("WEBHOOK_CONNECT_TIMEOUT")), read=float(setting("WEBHOOK_READ_TIMEOUT")))
    common: dict[str, Any] = {
        "host": str(pinned.address),
        "port": target.port,
        "timeout": timeout,
        "maxsize": 1,
        "retries": False,
    }
    if target.scheme == "https":
        is_name = ssrf._literal(target.host) is None
        context = ssl.create_default_context(cafile=CA_BUNDLE or certifi.where())
        pool = HTTPSConnectionPool(
            **common,
            ssl_context=context,
            server_hostname=target.host if is_name else None,
            assert_hostname=target.host,
        )
    else:
        pool = HTTPConnectionPool(**common)
    _pools[key] = pool
    while len(_pools) > POOLS_PER_PROCESS:
        _pools.popitem(last=False)[1].close()
    return pool


def _describe(exc: Exception) -> str:
    if isinstance(exc, ConnectTimeoutError):
        return "Timed out connecting."
    if isinstance(exc, ReadTimeoutError):
        return "Timed out waiting for the response."
    if isinstance(exc, NewConnectionError):
        return "Could not connect (connection refused or unreachable)."
    if isinstance(exc, SSLError):
        return f"TLS error: {exc}"[:500]
    if isinstance(exc, ProtocolError):
        return "The connection broke before a complete response."
    return f"{type(exc).__name__}: {exc}"[:500]


def post(pinned: ssrf.PinnedTarget, *, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST ``body`` to the pinned address. No redirects; at most ``WEBHOOK_MAX_RESPONSE_BYTES`` read."""
    pool = _pool(pinned)
    cap = int(setting("WEBHOOK_MAX_RESPONSE_BYTES"))
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST",
            pinned.target.path,
            body=body,
            headers={**headers, "Host": pinned.target.host_header},
            retries=False,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            release_conn=False,
        )
    except HTTPError as exc:
        return Outcome(succeeded=False, latency_ms=_ms(started), error=_describe(exc))
    try:
        content = response.read(cap + 1, decode_content=False)
        complete = len(content) <= cap
    except HTTPError as exc:
        response.close()
        response.release_conn()
        return Outcome(succeeded=False, status=response.status, latency_ms=_ms(started), error=_describe(exc))
    if not complete:
        response.close()  # do not read the rest; the connection is not reused
    response.release_conn()
    limit = int(setting("WEBHOOK_LOG_BODY_BYTES"))
    text = content[:limit].decode("utf-8", errors="replace")
    succeeded = 200 <= response.status < 300
    error = "" if succeeded else _status_error(response)
    return Outcome(succeeded=succeeded, status=response.status, latency_ms=_ms(started), body=text, error=error)


def _status_error(response) -> str:
    if 300 <= response.status < 400:
        return f"Redirect to {response.headers.get('location', '?')[:300]} not followed; answer with 2xx."
    return f"HTTP {response.status}"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def send(endpoint: WebhookEndpoint, *, msg_id: str, body: bytes) -> Outcome:
    """Check the target again, sign and send one request."""
    try:
        pinned = ssrf.pinned_target(endpoint.url)
    except (InvalidWebhookUrl, UnsafeUrl) as exc:
        return Outcome(succeeded=False, error=f"Refused: {exc.detail}"[:500])
    except ssrf.ResolutionFailed as exc:
        return Outcome(succeeded=False, error=f"DNS: {exc}"[:500])
    headers = signing.headers(secrets_=signing_secrets(endpoint), msg_id=msg_id, timestamp=int(time.time()), body=body)
    headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        return post(pinned, body=body, headers=headers)
    except Exception as exc:  # an unforeseen failure is a failed attempt too: logged, retried, finally failed
        logger.exception("webhook attempt to endpoint %s failed unexpectedly", endpoint.pk)
        return Outcome(succeeded=False, error=f"Unexpected error: {type(exc).__name__}")


# --- one attempt ---


def retry_delay(step: int) -> float | None:
    """Seconds before the retry after attempt ``step`` of a round (0-based), jittered; None when spent."""
    schedule = setting("WEBHOOK_RETRY_SCHEDULE")
    if isinstance(schedule, str):  # "5,300,1800" from the environment
        schedule = [item for item in schedule.split(",") if item.strip()]
    if step >= len(schedule):
        return None
    jitter = float(setting("WEBHOOK_RETRY_JITTER"))
    return max(0.0, float(schedule[step]) * random.uniform(1 - jitter, 1 + jitter))


def _notify_disabled_after_commit(endpoint_id: int) -> None:
    from .tasks import notify_endpoint_disabled_task

    queue_after_commit(notify_endpoint_disabled_task, endpoint_id)


def _endpoint_failed(endpoint: WebhookEndpoint, now) -> None:
    """Track the endpoint's run of failures; past ``WEBHOOK_DISABLE_AFTER_HOURS`` disable it and tell owners."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since=None).update(failing_since=now)
    failing_since = endpoint.failing_since or now
    if failing_since > now - timedelta(hours=float(setting("WEBHOOK_DISABLE_AFTER_HOURS"))):
        return
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(
        is_active=False, disabled_at=now, disabled_reason=DisabledReason.FAILING, disabled_notified_at=None
    )
    if disabled:
        logger.warning("webhook endpoint %s disabled after failing since %s", endpoint.pk, failing_since)
        _notify_disabled_after_commit(endpoint.pk)


def _record(delivery: WebhookDelivery, outcome: Outcome, *, now) -> None:
    WebhookAttempt.objects.create(
        delivery=delivery,
        attempted_at=now,
        succeeded=outcome.succeeded,
        response_status=outcome.status,
        latency_ms=outcome.latency_ms,
        response_body=outcome.body,
        error=outcome.error,
    )
    delivery.attempt_count += 1
    delivery.last_attempt_at = now
    delivery.last_response_status = outcome.status
    delivery.last_error = outcome.error
    endpoint = delivery.endpoint
    countdown = None
    delivery.claimed_at = None
    if outcome.succeeded:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, now, None
        if endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).exclude(failing_since=None).update(failing_since=None)
    else:
        delay = retry_delay(delivery.schedule_step)
        if delay is None:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        else:
            delivery.schedule_step += 1
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            if delay <= float(setting("WEBHOOK_MAX_COUNTDOWN_SECONDS")):
                delivery.dispatched_at, countdown = now, delay
            else:
                delivery.dispatched_at = None  # the sweep queues it when it is due
        _endpoint_failed(endpoint, now)
    delivery.save(
        update_fields=[
            "attempt_count",
            "last_attempt_at",
            "last_response_status",
            "last_error",
            "status",
            "delivered_at",
            "next_attempt_at",
            "schedule_step",
            "dispatched_at",
            "claimed_at",
        ]
    )
    if countdown is not None:
        from .relay import dispatch_after_commit

        dispatch_after_commit([delivery.pk], countdown=countdown)


def _claim(delivery_id: int, now) -> None:
    """Record, committed on its own, that this worker is about to attempt the delivery (if it is pending, due
    and not in flight elsewhere)."""
    due = (
        WebhookDelivery.objects.select_for_update(skip_locked=True)
        .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at=None) | Q(next_attempt_at__lte=now + EARLY_TOLERANCE))
    )
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk__in=due.values("pk")).update(claimed_at=now)


def attempt(*, delivery_id: int) -> str:
    """Attempt the delivery if it is pending and due. Returns what happened (for logs and tests)."""
    _claim(delivery_id, timezone.now())
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "event")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return "skipped"  # gone, or another worker is attempting it right now
        if delivery.status != DeliveryStatus.PENDING:
            return delivery.status
        now = timezone.now()
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + EARLY_TOLERANCE:
            return "not_due"
        if not delivery.endpoint.is_active:
            delivery.status, delivery.next_attempt_at, delivery.claimed_at = DeliveryStatus.FAILED, None, None
            delivery.last_error = "The endpoint is disabled."
            delivery.save(update_fields=["status", "next_attempt_at", "last_error", "claimed_at"])
            return "endpoint_disabled"
        outcome = send(delivery.endpoint, msg_id=delivery.webhook_id, body=body_of(delivery.event))
        _record(delivery, outcome, now=now)
        return "succeeded" if outcome.succeeded else delivery.status
