"""A receiver failing for longer than the countdown horizon: a retry due beyond
``WEBHOOK_MAX_COUNTDOWN_SECONDS`` has no message (it would outlive the broker's visibility timeout); only the
beat sweep queues it when it is due. With beat running, every event is delivered soon after the receiver
recovers; without the sweep in the schedule these deliveries stayed pending forever."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from django_tenants.utils import tenant_context

from integrations.choices import DeliveryStatus
from integrations.models import WebhookDelivery

from ..conftest import committed
from .load import report
from .processes import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

EVENTS = 5  # a quiet organization: nothing else would carry its deliveries along
# Scaled down: retries after 1 s (a countdown), then every 3 s, beyond a 2 s horizon (the sweep's); beat every 1 s.
WORKER_SETTINGS = {
    "WEBHOOK_RETRY_SCHEDULE": [1, 3, 3, 3, 3, 3, 3],
    "WEBHOOK_RETRY_JITTER": 0,
    "WEBHOOK_MAX_COUNTDOWN_SECONDS": 2,
}
FAILING_SECONDS = 8.0
# One retry interval (3 s) + one beat interval (1 s) + the delivery.
DELIVERED_WITHIN = 15.0


def test_a_receiver_failing_past_the_countdown_horizon_is_delivered_by_the_sweep(stack, tenant, receiver):
    app = stack()
    app.worker(settings=WORKER_SETTINGS)
    app.beat(sweep_seconds=1)
    receiver.behaviour.status = 503
    conn = http.client.HTTPConnection("127.0.0.1", app.api.port, timeout=30)
    for index in range(EVENTS):
        body = json.dumps({"name": f"quiet-{index}"})
        conn.request("POST", "/api/v1/leads/", body, {**tenant.headers, "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 201
    conn.close()
    failing_since = time.monotonic()

    def deliveries() -> list[WebhookDelivery]:
        def read():
            with tenant_context(tenant.organization):
                return list(WebhookDelivery.objects.filter(event_type="lead.created"))

        return committed(read)

    beyond = wait_until(
        lambda: (found := deliveries()) and all(d.schedule_step >= 2 for d in found) and found,
        timeout=30,
        what="retries scheduled beyond the countdown horizon",
        interval=0.25,
    )
    assert all(d.status == DeliveryStatus.PENDING for d in beyond)
    time.sleep(max(0.0, failing_since + FAILING_SECONDS - time.monotonic()))
    failed_requests = len(receiver.received)
    receiver.behaviour.status = 200
    recovered = time.monotonic()
    try:
        wait_until(
            lambda: all(d.status == DeliveryStatus.SUCCEEDED for d in deliveries()),
            timeout=DELIVERED_WITHIN,
            what="every delivery succeeded",
            interval=0.25,
        )
    except TimeoutError:
        pass
    delivered_after = time.monotonic() - recovered
    final = deliveries()
    succeeded = [d for d in final if d.status == DeliveryStatus.SUCCEEDED]
    ids = {request.webhook_id for request in receiver.received}

    report(
        f"A receiver failing (503) {FAILING_SECONDS:.0f} s, past the countdown horizon (2 s; retries every 3 s)",
        [
            f"  events written {EVENTS}, delivered {len(succeeded)}; failed attempts before recovery "
            f"{failed_requests}; attempts per delivery {sorted(d.attempt_count for d in final)}",
            f"  all delivered {delivered_after:.1f} s after the receiver recovered (bound {DELIVERED_WITHIN:.0f} s), "
            f"by messages the sweep sent (schedule step beyond the horizon: {sorted(d.schedule_step for d in final)})",
        ],
    )

    assert len(final) == EVENTS
    assert len(succeeded) == EVENTS, app.workers.logs()
    assert ids == {d.webhook_id for d in final}, "one webhook-id per event, on every attempt"
    assert delivered_after < DELIVERED_WITHIN
