"""From the outbox to webhook deliveries.

:func:`outbox_relay` takes unrelayed outbox rows in batches (``SELECT … FOR UPDATE SKIP LOCKED``, so relays
running side by side split the work), creates one :class:`WebhookDelivery` per matching active endpoint, marks
the rows relayed and, after commit, queues one delivery message per batch of an endpoint's deliveries
(:func:`per_endpoint`, up to ``WEBHOOK_DELIVERY_BATCH_SIZE`` each; :func:`integrations.delivery.attempt_many`).
A crash before the commit leaves the rows unrelayed for the next relay; a crash after it leaves deliveries
whose message was never sent, which :func:`deliveries_dispatch_due` (run by the beat sweep) sends again.

The relay is queued after every transaction that records events (:func:`request_relay`, debounced per tenant
so a burst of commits queues one relay, not hundreds) and by the beat sweep for every tenant.

While the broker is unreachable nothing waits for it: a relay that cannot be queued is left to the sweep, and
deliveries whose message cannot be sent are marked unsent (``dispatched_at`` cleared) so the first sweep after
the broker is back sends them. The sweep also sends again a delivery whose worker died mid-attempt (its claim
is set and its row unlocked, see :mod:`integrations.delivery`), instead of waiting for the broker's visibility
timeout.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.cache import caches
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.breaker import Unavailable
from config.db import connection
from config.tasks import queue_after_commit

from .choices import DeliveryStatus
from .conf import setting
from .events import DIRECT_ONLY
from .models import OutboxEvent, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

RELAY_QUEUED_TTL_SECONDS = 60
# A claim older than this on a row no attempt holds locked is a dead worker's. The claim is committed one round
# trip before the attempt locks the row; the margin only spares a duplicate message (which would be harmless).
CLAIM_GRACE = timedelta(seconds=10)


def _relay_key(schema_name: str) -> str:
    return f"webhooks:relay-queued:{schema_name}"


def request_relay(*, schema_name: str | None = None) -> None:
    """Queue a relay for the tenant (the current one by default) unless one is queued and has not started."""
    from .tasks import outbox_relay_task

    schema_name = schema_name or connection.schema_name
    cache = caches["control"]
    key = _relay_key(schema_name)
    if cache.add(key, 1, RELAY_QUEUED_TTL_SECONDS) or cache.get(key) is None:  # None: the cache is down
        try:
            outbox_relay_task.apply_async(headers={"_schema_name": schema_name})
        except Unavailable:
            cache.delete(key)  # the events stay unrelayed in the outbox: the next commit or the sweep relays them


def relay_started() -> None:
    """A relay is running: events committed from now on need another one, so let the next commit queue it."""
    caches["control"].delete(_relay_key(connection.schema_name))


def batches(delivery_ids: list[int], size: int | None = None) -> list[list[int]]:
    """``delivery_ids`` in order, cut into messages of at most ``WEBHOOK_DELIVERY_BATCH_SIZE``."""
    size = size or int(setting("WEBHOOK_DELIVERY_BATCH_SIZE"))
    return [delivery_ids[index : index + size] for index in range(0, len(delivery_ids), size)]


def per_endpoint(rows: list[tuple[int, int]]) -> list[list[int]]:
    """``(delivery id, endpoint id)`` pairs as delivery ids grouped per endpoint (in the order given within each),
    each group cut into batches: a batch goes to one receiver, on one kept-alive connection, and a slow
    receiver delays only its own batches."""
    grouped: dict[int, list[int]] = {}
    for delivery_id, endpoint_id in rows:
        grouped.setdefault(endpoint_id, []).append(delivery_id)
    return [batch for ids in grouped.values() for batch in batches(ids)]


def dispatch(delivery_ids: list[int], *, countdown: float | None = None, schema_name: str | None = None) -> None:
    """Send one delivery message per batch of ids (:func:`batches`), for the tenant (the current one by default).
    Ids of one endpoint, in order, make the best batches (:func:`per_endpoint`)."""
    from .tasks import deliver_webhooks_task

    headers = {"_schema_name": schema_name or connection.schema_name}
    sent = 0
    for batch in batches(list(delivery_ids)):
        try:
            deliver_webhooks_task.apply_async((batch,), countdown=countdown, headers=headers)
        except Unavailable:
            # The broker is down: no message exists for these; the first sweep after it is back sends them.
            WebhookDelivery.objects.filter(pk__in=delivery_ids[sent:]).update(dispatched_at=None)
            return
        sent += len(batch)


def dispatch_after_commit(delivery_ids: list[int], *, countdown: float | None = None) -> None:
    """:func:`dispatch` once the transaction commits, for the tenant whose schema wrote the deliveries."""
    if not delivery_ids:
        return
    ids, schema_name = list(delivery_ids), connection.schema_name

    def dispatch_deliveries() -> None:
        dispatch(ids, countdown=countdown, schema_name=schema_name)

    transaction.on_commit(dispatch_deliveries, robust=True)


def _relay_batch(batch_size: int) -> int:
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(relayed_at=None)
            .order_by("occurred_at", "id")
            .only("id", "type")[:batch_size]
        )
        if not events:
            return 0
        now = timezone.now()
        endpoints = list(WebhookEndpoint.objects.filter(is_active=True).only("id", "event_types"))
        deliveries = [
            WebhookDelivery(
                endpoint_id=endpoint.pk,
                event_id=event.pk,
                event_type=event.type,
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                dispatched_at=now,
            )
            for event in events
            if event.type not in DIRECT_ONLY
            for endpoint in endpoints
            if endpoint.subscribes_to(event.type)
        ]
        # A pair that exists already (an event replayed before it was relayed) is left as it is.
        created = (
            WebhookDelivery.objects.bulk_create(
                deliveries, update_conflicts=True, unique_fields=["endpoint", "event"], update_fields=["dispatched_at"]
            )
            if deliveries
            else []
        )
        OutboxEvent.objects.filter(pk__in=[event.pk for event in events]).update(relayed_at=now)
        for batch in per_endpoint([(delivery.pk, delivery.endpoint_id) for delivery in created]):
            dispatch_after_commit(batch)
    return len(events)


def outbox_relay(*, batch_size: int | None = None) -> int:
    """Relay every unrelayed outbox row of the current tenant. Returns how many rows it relayed."""
    batch_size = batch_size or int(setting("WEBHOOK_RELAY_BATCH_SIZE"))
    total = 0
    while True:
        count = _relay_batch(batch_size)
        total += count
        if count < batch_size:
            return total


def deliveries_dispatch_due(*, now=None, batch_size: int = 1000) -> int:
    """Queue the due deliveries that have no live message: retries scheduled beyond the countdown horizon,
    replays, messages the broker never took (``dispatched_at`` cleared), messages of a worker that died
    mid-attempt (claimed, and no attempt holds the row), and messages lost to a crash (due for longer than
    ``WEBHOOK_REDISPATCH_AFTER_SECONDS``). Rows an attempt holds locked are skipped."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=float(setting("WEBHOOK_REDISPATCH_AFTER_SECONDS")))
    orphaned = Q(claimed_at__lte=now - CLAIM_GRACE)
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                WebhookDelivery.objects.select_for_update(skip_locked=True)
                .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                .filter(Q(dispatched_at=None) | orphaned | Q(dispatched_at__lte=stale, next_attempt_at__lte=stale))
                .order_by("next_attempt_at")
                .values_list("pk", "endpoint_id")[:batch_size]
            )
            ids = [pk for pk, _endpoint_id in rows]
            if ids:
                WebhookDelivery.objects.filter(pk__in=ids).update(dispatched_at=timezone.now(), claimed_at=None)
                for batch in per_endpoint(rows):
                    dispatch_after_commit(batch)
        total += len(ids)
        if len(ids) < batch_size:
            return total


def dispatch_due_after_commit() -> None:
    """Queue :func:`deliveries_dispatch_due` once the transaction commits (e.g. after a replay); when the broker
    is down, the sweep queues the same deliveries."""
    from .tasks import webhook_dispatch_due_task

    queue_after_commit(webhook_dispatch_due_task)
