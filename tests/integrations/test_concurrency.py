"""Relays and attempts running side by side, on committed data: each event relayed once, each delivery
attempted by one worker at a time."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django_tenants.utils import tenant_context

from integrations import delivery, relay, services
from integrations.models import OutboxEvent, WebhookAttempt, WebhookDelivery
from tenants.services import organization_delete, organization_purge

from ..conftest import committed
from ..factories import make_organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def organization(loopback):
    organization = committed(make_organization, name="Webhooks concurrency")
    yield organization
    committed(organization_delete, organization=organization)
    committed(organization_purge, organization=organization)


def _in(organization, fn):
    def run():
        with tenant_context(organization):
            return fn()

    return committed(run)


def _side_by_side(organization, fn, count: int = 2) -> list:
    results: list = []
    barrier = threading.Barrier(count)

    def run():
        try:
            with tenant_context(organization):
                barrier.wait(10)
                results.append(fn())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_relays_relay_each_event_once(organization, receiver, monkeypatch):
    monkeypatch.setattr(relay, "dispatch", lambda *args, **kwargs: None)  # count deliveries, do not send
    _in(organization, lambda: services.webhook_endpoint_create(url=receiver.url, event_types=["*"], actor=None))

    def events():
        OutboxEvent.objects.bulk_create(
            [OutboxEvent(type="lead.updated", subject_type="lead", subject_id=str(n), payload={}) for n in range(600)]
        )

    _in(organization, events)
    relayed = _side_by_side(organization, lambda: relay.outbox_relay(batch_size=50), count=3)
    assert sum(relayed) == 600
    assert _in(organization, lambda: WebhookDelivery.objects.count()) == 600
    assert _in(organization, lambda: OutboxEvent.objects.filter(relayed_at=None).count()) == 0


def test_one_delivery_is_attempted_by_one_worker_at_a_time(organization, receiver, monkeypatch):
    monkeypatch.setattr(relay, "dispatch", lambda *args, **kwargs: None)
    receiver.behaviour.hold_first = 1  # the first request is slow: the other worker arrives meanwhile
    receiver.behaviour.hold_seconds = 1.5
    _in(organization, lambda: services.webhook_endpoint_create(url=receiver.url, event_types=["*"], actor=None))
    _in(organization, lambda: OutboxEvent.objects.create(type="lead.deleted", subject_type="lead", subject_id="1"))
    _in(organization, relay.outbox_relay)
    delivery_id = _in(organization, lambda: WebhookDelivery.objects.get().pk)

    outcomes = _side_by_side(organization, lambda: delivery.attempt(delivery_id=delivery_id))
    assert sorted(outcomes) == ["skipped", "succeeded"]
    assert len(receiver.received) == 1
    assert _in(organization, lambda: WebhookAttempt.objects.count()) == 1


def test_workers_given_overlapping_batches_attempt_each_delivery_once(organization, receiver, monkeypatch):
    """Three workers, each with every delivery of the batch in its own order (duplicated and redelivered
    messages): each delivery is claimed and attempted by one of them, and each webhook-id arrives once."""
    import random

    monkeypatch.setattr(relay, "dispatch", lambda *args, **kwargs: None)
    receiver.behaviour.delay_seconds = 0.01
    _in(organization, lambda: services.webhook_endpoint_create(url=receiver.url, event_types=["*"], actor=None))

    def events():
        OutboxEvent.objects.bulk_create(
            [OutboxEvent(type="lead.deleted", subject_type="lead", subject_id=str(n), payload={}) for n in range(40)]
        )

    _in(organization, events)
    _in(organization, relay.outbox_relay)
    ids = _in(organization, lambda: list(WebhookDelivery.objects.values_list("pk", flat=True)))
    orders = [random.sample(ids, len(ids)) for _ in range(3)]

    results = _side_by_side(organization, lambda: delivery.attempt_many(delivery_ids=orders.pop()), count=3)
    assert len(results) == 3
    assert _in(organization, lambda: WebhookAttempt.objects.count()) == 40
    assert _in(organization, lambda: WebhookDelivery.objects.filter(status="succeeded").count()) == 40
    arrived = [request.webhook_id for request in receiver.received]
    assert len(arrived) == len(set(arrived)) == 40
    assert _in(organization, lambda: WebhookDelivery.objects.exclude(claimed_at=None).count()) == 0
