"""A worker killed with SIGKILL in the middle of a burst of deliveries, with the broker's visibility timeout at
its production value (an hour): the message it held does not come back in time, so the claim on the delivery
row does the work. The beat sweep sees a claimed, unlocked row (its worker died; PostgreSQL released the lock
with the connection) and sends it again. Every event is delivered, each under one webhook-id."""

from __future__ import annotations

import threading
import time

import pytest
from django_tenants.utils import tenant_context

from integrations.choices import DeliveryStatus
from integrations.models import OutboxEvent, WebhookDelivery

from ..conftest import committed
from .load import report
from .processes import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

BURST = 40
# The sweep's claim grace (10 s) + one beat interval (1 s here) + the remaining deliveries.
DELIVERED_WITHIN = 30.0


def _post_burst(port: int, headers: dict, count: int) -> list[int]:
    import http.client
    import json

    statuses = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for index in range(count):
        conn.request(
            "POST",
            "/api/v1/leads/",
            json.dumps({"name": f"burst-{index}"}),
            {**headers, "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    return statuses


def test_a_worker_killed_mid_burst_loses_nothing(stack, tenant, receiver):
    app = stack()
    first = app.worker()
    receiver.behaviour.delay_seconds = 0.15  # a receiver under load: deliveries are in flight when the kill comes
    statuses: list[int] = []
    writer = threading.Thread(target=lambda: statuses.extend(_post_burst(app.api.port, tenant.headers, BURST)))
    writer.start()
    wait_until(lambda: len(receiver.received) >= 8, timeout=60, what="deliveries under way", interval=0.02)
    first.kill()
    killed = time.monotonic()
    received_at_kill = len(receiver.received)
    writer.join(60)
    app.worker()
    app.beat(sweep_seconds=1)

    def state():
        with tenant_context(tenant.organization):
            events = {
                f"msg_{pk.hex}" for pk in OutboxEvent.objects.filter(type="lead.created").values_list("pk", flat=True)
            }
            deliveries = list(
                WebhookDelivery.objects.filter(event_type="lead.created").values_list("status", flat=True)
            )
        return events, deliveries

    def done() -> bool:
        events, deliveries = committed(state)
        received = {request.webhook_id for request in receiver.received}
        return len(events) == BURST and events <= received and deliveries.count(DeliveryStatus.SUCCEEDED) == BURST

    try:
        wait_until(done, timeout=DELIVERED_WITHIN, what="every event delivered", interval=0.25)
    except TimeoutError:
        pass
    recovered_after = time.monotonic() - killed
    events, deliveries = committed(state)
    per_id: dict[str, int] = {}
    for request in receiver.received:
        per_id[request.webhook_id] = per_id.get(request.webhook_id, 0) + 1
    delivered = events & set(per_id)

    report(
        f"A worker killed (SIGKILL) mid-burst of {BURST} writes; visibility timeout 3600 s; sweep every 1 s",
        [
            f"  writes acknowledged {statuses.count(201)} of {len(statuses)}; requests received when killed: "
            f"{received_at_kill}",
            f"  events written {len(events)}, delivered {len(delivered)}; deliveries {len(deliveries)}, succeeded "
            f"{deliveries.count(DeliveryStatus.SUCCEEDED)}; requests received {len(receiver.received)}, "
            f"webhook-ids sent twice {sum(1 for count in per_id.values() if count > 1)} (the attempt cut by the kill)",
            f"  all delivered {recovered_after:.1f} s after the kill (bound {DELIVERED_WITHIN:.0f} s, "
            "instead of the hour of the visibility timeout)",
        ],
    )

    assert statuses == [201] * BURST
    assert len(events) == BURST
    assert delivered == events, f"{len(events - delivered)} events not delivered\n{app.workers.logs()}"
    assert len(deliveries) == BURST, "one delivery (one webhook-id) per event"
    assert deliveries.count(DeliveryStatus.SUCCEEDED) == BURST
    assert recovered_after < DELIVERED_WITHIN
