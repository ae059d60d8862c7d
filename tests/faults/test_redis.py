"""Redis (cache, rate limits, idempotency keys and the Celery broker) stopped, then frozen, under a small load
against the API as the Dockerfile serves it, with a real worker and beat.

What must hold: no 5xx but documented 503s (``idempotency_unavailable`` with ``Retry-After``: a keyed write
that was not processed); every acknowledged write is in the database and no refused one is; a request costs at
most a bounded wait even while Redis is frozen; the worker reconnects by itself and every event is delivered,
once per event (one webhook-id), within ``DELIVERED_WITHIN`` seconds of Redis coming back.
"""

from __future__ import annotations

import time

import pytest
from django_tenants.utils import tenant_context

from crm.models import Lead
from integrations.models import OutboxEvent, WebhookDelivery

from ..conftest import committed
from .load import Load, percentile, phase_line, report
from .processes import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

PHASE_SECONDS = 4.0
# Worker reconnect (its retries back off 2 s, 4 s, …) + a beat sweep (every second here, a minute by default)
# + the deliveries themselves.
DELIVERED_WITHIN = 40.0
# While Redis is frozen a request waits at most: one Redis timeout (0.5 s) for the call that finds it frozen,
# and up to two for the publish after commit (one retry), once per backoff period and process.
FROZEN_REQUEST_BOUND = 2.5


def _reconnect_seconds(log: str) -> float:
    """From the worker's log: seconds between losing the broker and being connected again."""
    import json
    from datetime import datetime

    def at(line: str) -> datetime:
        """A log line's time: the worker logs JSON lines (no terminal), Celery's own banner-time lines aside."""
        if line.startswith("{"):
            return datetime.fromisoformat(json.loads(line)["time"])
        return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").astimezone()  # noqa: DTZ007

    lines = log.splitlines()
    lost = next(index for index, line in enumerate(lines) if "Connection to broker lost" in line)
    connected = next(line for line in lines[lost:] if "Connected to" in line)
    return (at(connected) - at(lines[lost])).total_seconds()


def _in(organization, fn):
    def run():
        with tenant_context(organization):
            return fn()

    return committed(run)


def test_redis_stopped_then_frozen_under_load(stack, tenant, redis_server, receiver):
    app = stack()
    worker = app.worker()
    app.beat(sweep_seconds=1)
    load = Load(port=app.api.port, headers=tenant.headers).start()
    try:
        time.sleep(PHASE_SECONDS)
        load.phase = "stopped"
        redis_server.stop()
        time.sleep(PHASE_SECONDS)
        redis_server.start()
        restarted = time.monotonic()
        load.phase = "after stop"
        time.sleep(PHASE_SECONDS)
        load.phase = "frozen"
        redis_server.freeze()
        time.sleep(PHASE_SECONDS)
        redis_server.thaw()
        back = time.monotonic()
        load.phase = "after"
        time.sleep(PHASE_SECONDS)
    finally:
        redis_server.thaw()
        load.stop()

    acknowledged, refused = load.acknowledged_writes(), load.refused_writes()
    present = set(_in(tenant.organization, lambda: list(Lead.objects.values_list("name", flat=True))))
    events = _in(
        tenant.organization,
        lambda: {
            f"msg_{pk.hex}" for pk in OutboxEvent.objects.filter(type="lead.created").values_list("pk", flat=True)
        },
    )

    def delivered() -> set[str]:
        return {request.webhook_id for request in receiver.received} & events

    try:
        wait_until(lambda: delivered() == events, timeout=DELIVERED_WITHIN, what="every event delivered", interval=0.2)
    except TimeoutError:
        pass
    recovered_after = time.monotonic() - back
    reconnected = _reconnect_seconds(worker.output())
    deliveries = _in(tenant.organization, lambda: WebhookDelivery.objects.filter(event_type="lead.created").count())
    ids_per_event = {}
    for request in receiver.received:
        ids_per_event.setdefault(request.webhook_id, 0)
        ids_per_event[request.webhook_id] += 1

    report(
        "Redis stopped (SIGTERM) 4 s, then frozen (SIGSTOP) 4 s, under load (3 clients; API: 1 gthread worker x 8)",
        [
            *(
                phase_line(load.in_phase(phase), phase)
                for phase in ("before", "stopped", "after stop", "frozen", "after")
            ),
            f"  writes acknowledged {len(acknowledged)}, present {len(present & set(acknowledged))}; "
            f"refused (503) {len(refused)}, present {len(present & set(refused))}",
            f"  events written {len(events)}, delivered {len(delivered())} "
            f"(deliveries {deliveries}, requests received {len(receiver.received)}, "
            f"max requests per webhook-id {max(ids_per_event.values(), default=0)})",
            f"  keyed writes served again {load.first_success_after(restarted, 'keyed'):.1f} s after the restart, "
            f"{load.first_success_after(back, 'keyed'):.1f} s after the thaw (REDIS_BACKOFF_SECONDS 5)",
            f"  all events delivered {recovered_after:.1f} s after Redis was thawed (bound {DELIVERED_WITHIN:.0f} s);"
            f" the worker reconnected unaided {reconnected:.1f} s after losing Redis (its retries wait 2 s, 4 s, …)",
        ],
    )

    assert not load.unexpected(allowed_503={"idempotency_unavailable"}), [
        (a.phase, a.kind, a.status, a.code) for a in load.unexpected(allowed_503={"idempotency_unavailable"})
    ]
    assert all(answer.kind == "keyed" for answer in load.answers if answer.status == 503)
    assert set(acknowledged) <= present, "every acknowledged write is in the database"
    assert not set(refused) & present, "a write answered 503 was not processed"
    assert max(answer.seconds for answer in load.in_phase("frozen")) < FROZEN_REQUEST_BOUND
    assert len(events) == len(acknowledged)
    assert delivered() == events, f"{len(events - delivered())} events not delivered\n{app.workers.logs()}"
    assert deliveries == len(events), "one delivery (one webhook-id) per event"
    assert worker.process.poll() is None, worker.output()[-3000:]
    assert reconnected < DELIVERED_WITHIN
    for phase in ("before", "after"):
        assert percentile([answer.seconds for answer in load.in_phase(phase)], 0.99) < 1.5, phase
