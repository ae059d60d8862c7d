"""Attempts of deliveries, a batch at a time: sign, send to the pinned address, log, and schedule what comes next.

A delivery message carries a batch of delivery ids (:func:`attempt_many`; the relay groups them per endpoint,
up to ``WEBHOOK_DELIVERY_BATCH_SIZE``). The worker claims the batch in one committed UPDATE, then locks its rows
(``SELECT … FOR UPDATE SKIP LOCKED``), sends their requests one after the other on the process's kept-alive
connection to each pinned address, and commits every outcome together (one INSERT of the attempts, one UPDATE
of the deliveries): two commits per batch instead of two per delivery, which were most of an attempt's cost
(decision 0016).

The row locks are held from before the requests until the outcomes are committed. A second message for a
delivery (a redelivered or duplicated task) skips it while it is in flight; a worker that dies mid-batch drops
its connection, PostgreSQL releases the locks, and the deliveries are attempted again (the whole batch: a
receiver may see a request of it twice, always with the same ``webhook-id``). A batch starts no request after
``BATCH_SECONDS``; the deliveries left are queued again at once.

The claim (``claimed_at``, committed before the locks are taken) is cleared by the outcome. A claim that is set
on an unlocked row belongs to a worker that died, and the beat sweep sends the delivery again within a minute
instead of waiting for the broker's visibility timeout (an hour) to bring the message back
(:func:`integrations.relay.deliveries_dispatch_due`).

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
from typing import Any, cast

import certifi
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Field, Q
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
# Retries of one batch due within this of each other share a message (sent when the first is due).
RETRY_GROUP_SPREAD = timedelta(seconds=1)
# A batch starts no request after this many seconds (a slow receiver): the rest are queued again at once. Well
# within the task's time limit, and it bounds how many requests a worker killed mid-batch leaves to send again.
BATCH_SECONDS = 20.0
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


def target(endpoint: WebhookEndpoint, *, targets: dict | None = None) -> ssrf.PinnedTarget | Outcome:
    """The address to send to, checked now (:func:`ssrf.pinned_target`), or the refusal as a failed outcome.
    ``targets`` remembers the answer per URL for the rest of a batch (a few seconds): the check still applies to
    the address connected to, since the connection goes to that very address."""
    if targets is not None and endpoint.url in targets:
        return targets[endpoint.url]
    found: ssrf.PinnedTarget | Outcome
    try:
        found = ssrf.pinned_target(endpoint.url)
    except (InvalidWebhookUrl, UnsafeUrl) as exc:
        found = Outcome(succeeded=False, error=f"Refused: {exc.detail}"[:500])
    except ssrf.ResolutionFailed as exc:
        found = Outcome(succeeded=False, error=f"DNS: {exc}"[:500])
    if targets is not None:
        targets[endpoint.url] = found
    return found


def send(endpoint: WebhookEndpoint, *, msg_id: str, body: bytes, targets: dict | None = None) -> Outcome:
    """Check the target again, sign and send one request."""
    pinned = target(endpoint, targets=targets)
    if isinstance(pinned, Outcome):
        return pinned
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


def _endpoint_failed(endpoint: WebhookEndpoint, now, *, since) -> None:
    """Track the endpoint's run of failures (``since``: when it started, if it was not running); past
    ``WEBHOOK_DISABLE_AFTER_HOURS`` disable it and tell owners."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since=None).update(failing_since=since)
    failing_since = endpoint.failing_since or since
    if failing_since > now - timedelta(hours=float(setting("WEBHOOK_DISABLE_AFTER_HOURS"))):
        return
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(
        is_active=False, disabled_at=now, disabled_reason=DisabledReason.FAILING, disabled_notified_at=None
    )
    if disabled:
        logger.warning("webhook endpoint %s disabled after failing since %s", endpoint.pk, failing_since)
        _notify_disabled_after_commit(endpoint.pk)


# Fields an outcome writes on its delivery (one UPDATE for the whole batch).
OUTCOME_FIELDS = [
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


@dataclass
class _Attempted:
    delivery: WebhookDelivery
    outcome: Outcome
    at: Any  # when its request started
    countdown: float | None = None


def _apply(item: _Attempted) -> None:
    """The outcome on the delivery row (in memory) and the countdown of its retry, if it gets a message."""
    delivery, outcome, now = item.delivery, item.outcome, item.at
    delivery.attempt_count += 1
    delivery.last_attempt_at = now
    delivery.last_response_status = outcome.status
    delivery.last_error = outcome.error
    delivery.claimed_at = None
    if outcome.succeeded:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, now, None
        return
    delay = retry_delay(delivery.schedule_step)
    if delay is None:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        return
    delivery.schedule_step += 1
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    if delay <= float(setting("WEBHOOK_MAX_COUNTDOWN_SECONDS")):
        delivery.dispatched_at, item.countdown = now, delay
    else:
        delivery.dispatched_at = None  # the sweep queues it when it is due


def _retry_groups(items: list[_Attempted], *, now) -> list[tuple[float, list[int]]]:
    """Retries that get a message, in groups whose due times lie within ``RETRY_GROUP_SPREAD`` of the first: one
    message each, with the countdown from ``now`` to the first (the others are then due within the early
    tolerance). Counted from their due times, not from their requests: a batch's own duration is not added."""
    due = sorted((item.delivery.next_attempt_at, item.delivery.pk) for item in items if item.countdown is not None)
    groups: list[tuple[Any, list[int]]] = []
    for at, pk in due:
        if groups and at - groups[-1][0] <= RETRY_GROUP_SPREAD:
            groups[-1][1].append(pk)
        else:
            groups.append((at, [pk]))
    return [(max(0.0, (first - now).total_seconds()), ids) for first, ids in groups]


def _endpoints_after(items: list[_Attempted]) -> None:
    """Each endpoint's run of failures after the batch, as if its attempts had been recorded one by one: ended by
    its last attempt's success, else running since its first failure after its last success. Endpoints in
    primary key order (no deadlock between batches)."""
    last: dict[int, _Attempted] = {}
    first_failure: dict[int, Any] = {}
    any_success: set[int] = set()
    for item in items:
        endpoint_id = item.delivery.endpoint_id
        last[endpoint_id] = item
        if item.outcome.succeeded:
            any_success.add(endpoint_id)
            first_failure.pop(endpoint_id, None)
        else:
            first_failure.setdefault(endpoint_id, item.at)
    for endpoint_id in sorted(last):
        item = last[endpoint_id]
        endpoint = item.delivery.endpoint
        if item.outcome.succeeded:
            if endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=endpoint_id).exclude(failing_since=None).update(failing_since=None)
            continue
        since = first_failure[endpoint_id]
        if endpoint_id in any_success and endpoint.failing_since is not None:  # that run ended within the batch
            WebhookEndpoint.objects.filter(pk=endpoint_id).update(failing_since=since)
            endpoint.failing_since = since
        _endpoint_failed(endpoint, item.at, since=since)


def _save_outcomes(deliveries: list[WebhookDelivery]) -> None:
    """``OUTCOME_FIELDS`` of every delivery in one ``UPDATE … FROM unnest(…)``, one array per column (measured:
    ``bulk_update``, a CASE per field and row, cost more than the requests of the batch, and a VALUES list's
    thousand placeholders took the driver longer than the database)."""
    fields = [WebhookDelivery._meta.get_field(name) for name in OUTCOME_FIELDS]
    assert all(isinstance(field, Field) for field in fields)
    concrete = cast("list[Field]", fields)
    pk = WebhookDelivery._meta.pk
    columns = [pk, *concrete]
    arrays = [[delivery.pk for delivery in deliveries]] + [
        [field.get_db_prep_save(getattr(delivery, field.attname), db_connection) for delivery in deliveries]
        for field in concrete
    ]

    def name(field: Field) -> str:
        return db_connection.ops.quote_name(str(field.column))

    sql = (
        f"UPDATE {db_connection.ops.quote_name(WebhookDelivery._meta.db_table)} AS d SET "
        + ", ".join(f"{name(field)} = v.{name(field)}" for field in concrete)
        + " FROM unnest("
        + ", ".join(f"%s::{field.db_type(db_connection)}[]" for field in columns)
        + f") AS v ({', '.join(name(field) for field in columns)})"
        + f" WHERE d.{name(pk)} = v.{name(pk)}"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(sql, arrays)


def _record(items: list[_Attempted]) -> None:
    """The outcomes of a batch: the attempts in one INSERT, the deliveries in one UPDATE, then the endpoints'
    failure runs and the retry messages (after commit)."""
    if not items:
        return
    WebhookAttempt.objects.bulk_create(
        [
            WebhookAttempt(
                delivery=item.delivery,
                attempted_at=item.at,
                succeeded=item.outcome.succeeded,
                response_status=item.outcome.status,
                latency_ms=item.outcome.latency_ms,
                response_body=item.outcome.body,
                error=item.outcome.error,
            )
            for item in items
        ]
    )
    for item in items:
        _apply(item)
    _save_outcomes([item.delivery for item in items])
    _endpoints_after(items)
    from .relay import dispatch_after_commit

    for countdown, ids in _retry_groups(items, now=timezone.now()):
        dispatch_after_commit(ids, countdown=countdown)


def _claim(delivery_ids: list[int], now) -> None:
    """Record, committed on its own, that this worker is about to attempt the deliveries (those pending, due and
    not in flight elsewhere): one UPDATE for the batch."""
    due = (
        WebhookDelivery.objects.select_for_update(skip_locked=True)
        .filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at=None) | Q(next_attempt_at__lte=now + EARLY_TOLERANCE))
    )
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk__in=due.values("pk")).update(claimed_at=now)


def _release(deliveries: list[WebhookDelivery], now) -> None:
    """Deliveries the batch had no time left for: unclaimed, and queued again (after commit) for the next worker."""
    from .relay import dispatch_after_commit

    ids = [delivery.pk for delivery in deliveries]
    WebhookDelivery.objects.filter(pk__in=ids).update(claimed_at=None, dispatched_at=now)
    dispatch_after_commit(ids)


def attempt_many(*, delivery_ids: list[int]) -> dict[int, str]:
    """Attempt those of the deliveries that are pending and due, one after the other on kept-alive connections,
    and commit their outcomes together. Returns what happened to each (for logs and tests): ``succeeded``, the
    status after a failed attempt (``pending``, ``failed``), the status of one that was not pending, ``not_due``,
    ``endpoint_disabled``, ``skipped`` (gone, or in flight elsewhere) or ``released`` (no time left in the batch:
    queued again)."""
    ids = list(dict.fromkeys(delivery_ids))
    _claim(ids, timezone.now())
    results: dict[int, str] = dict.fromkeys(ids, "skipped")  # gone, or another worker is attempting it right now
    deadline = time.monotonic() + BATCH_SECONDS
    with transaction.atomic():
        locked = {
            delivery.pk: delivery
            for delivery in WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "event")
            .filter(pk__in=ids)
        }
        attempted: list[_Attempted] = []
        disabled: list[WebhookDelivery] = []
        released: list[WebhookDelivery] = []
        targets: dict[str, ssrf.PinnedTarget | Outcome] = {}
        for pk in ids:
            delivery = locked.get(pk)
            if delivery is None:
                continue
            if delivery.status != DeliveryStatus.PENDING:
                results[pk] = delivery.status
                continue
            now = timezone.now()
            if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + EARLY_TOLERANCE:
                results[pk] = "not_due"
                continue
            if not delivery.endpoint.is_active:
                delivery.status, delivery.next_attempt_at, delivery.claimed_at = DeliveryStatus.FAILED, None, None
                delivery.last_error = "The endpoint is disabled."
                disabled.append(delivery)
                results[pk] = "endpoint_disabled"
                continue
            if time.monotonic() > deadline:
                released.append(delivery)
                results[pk] = "released"
                continue
            outcome = send(delivery.endpoint, msg_id=delivery.webhook_id, body=body_of(delivery.event), targets=targets)
            attempted.append(_Attempted(delivery=delivery, outcome=outcome, at=now))
        if disabled:
            WebhookDelivery.objects.bulk_update(disabled, ["status", "next_attempt_at", "last_error", "claimed_at"])
        if released:
            _release(released, timezone.now())
        _record(attempted)
    for item in attempted:
        results[item.delivery.pk] = "succeeded" if item.outcome.succeeded else item.delivery.status
    return results


def attempt(*, delivery_id: int) -> str:
    """Attempt the delivery if it is pending and due. Returns what happened (for logs and tests)."""
    return attempt_many(delivery_ids=[delivery_id])[delivery_id]
