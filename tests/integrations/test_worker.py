"""End to end with real Celery workers: outage and recovery, a worker killed mid-delivery. Nothing is lost,
and every attempt of a delivery carries the same webhook-id."""

from __future__ import annotations

import time

import pytest
from django_tenants.utils import tenant_context

from crm import services as crm
from integrations import services
from integrations.choices import DeliveryStatus
from integrations.models import WebhookAttempt, WebhookDelivery
from integrations.tasks import (
    deliver_webhook_task,
    deliver_webhooks_task,
    outbox_relay_task,
    webhook_dispatch_due_task,
)
from tenants.services import organization_delete, organization_purge
from tests.factories import SYSTEM

from ..conftest import committed
from ..factories import make_organization

pytestmark = [pytest.mark.django_db, pytest.mark.worker]


@pytest.fixture
def organization(loopback):
    organization = committed(make_organization, name="Webhooks worker")
    yield organization
    committed(organization_delete, organization=organization)
    committed(organization_purge, organization=organization)


@pytest.fixture
def queued(celery_worker, monkeypatch):
    """Tasks queued by this process go to the test worker's queue."""
    celery_worker.route(
        outbox_relay_task,
        deliver_webhook_task,
        deliver_webhooks_task,
        webhook_dispatch_due_task,
        monkeypatch=monkeypatch,
    )
    return celery_worker


def _in(organization, fn):
    def run():
        with tenant_context(organization):
            return fn()

    return committed(run)


def _endpoint(organization, url):
    return _in(organization, lambda: services.webhook_endpoint_create(url=url, event_types=["*"], actor=None))


def _lead(organization, name):
    return _in(organization, lambda: crm.lead_create(actor=SYSTEM, name=name))


def _delivery(organization, lead):
    return _in(
        organization,
        lambda: WebhookDelivery.objects.filter(event__subject_id=str(lead.pk), event__type="lead.created").first(),
    )


def _until(check, *, timeout: float, what: str, logs=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def test_receiver_down_then_up_is_delivered_by_the_worker_after_retries(organization, receiver, queued):
    queued(settings={"WEBHOOK_ALLOW_LOOPBACK": True, "WEBHOOK_RETRY_SCHEDULE": [1, 1, 2, 2, 5, 5, 10]})
    endpoint, secret = _endpoint(organization, receiver.url)
    receiver.stop()

    lead = _lead(organization, "Down then up")  # its commit queues the relay, the relay the delivery
    _until(
        lambda: (_delivery(organization, lead) or WebhookDelivery()).attempt_count >= 2,
        timeout=30,
        what="two failed attempts",
        logs=queued.logs,
    )
    receiver.start()
    received = receiver.wait_for(1, timeout=30)
    delivery = _until(
        lambda: (d := _delivery(organization, lead)) and d.status == DeliveryStatus.SUCCEEDED and d,
        timeout=30,
        what="success",
        logs=queued.logs,
    )
    assert delivery.attempt_count >= 3
    assert {request.webhook_id for request in received} == {delivery.webhook_id}
    assert _in(organization, lambda: WebhookDelivery.objects.filter(event=delivery.event_id).count()) == 1
    from standardwebhooks import Webhook

    assert Webhook(secret).verify(received[0].body, received[0].headers)["data"]["name"] == "Down then up"


def test_a_worker_killed_mid_delivery_loses_nothing(organization, receiver, queued):
    """acks_late + a short visibility timeout: the message comes back to a new worker; the row lock of the
    killed attempt went with its connection, so the new worker delivers, with the same webhook-id."""
    worker_settings = {"WEBHOOK_ALLOW_LOOPBACK": True, "WEBHOOK_READ_TIMEOUT": 60}
    first = queued(settings=worker_settings)
    _endpoint(organization, receiver.url)
    receiver.behaviour.hold_first = 1  # the first request hangs: the worker is mid-delivery
    receiver.behaviour.hold_seconds = 120

    lead = _lead(organization, "Killed mid-delivery")
    _until(lambda: receiver.received, timeout=30, what="the first request", logs=queued.logs)
    [in_flight] = receiver.received
    first.kill()
    assert _delivery(organization, lead).status == DeliveryStatus.PENDING

    queued(settings=worker_settings)
    received = receiver.wait_for(2, timeout=60)
    delivery = _until(
        lambda: (d := _delivery(organization, lead)) and d.status == DeliveryStatus.SUCCEEDED and d,
        timeout=30,
        what="success after the kill",
        logs=queued.logs,
    )
    assert received[1].webhook_id == in_flight.webhook_id == delivery.webhook_id
    assert received[1].body == in_flight.body
    assert delivery.attempt_count == 1  # the killed attempt rolled back with its connection
    attempts = _in(organization, lambda: list(WebhookAttempt.objects.filter(delivery=delivery.pk)))
    assert [attempt.response_status for attempt in attempts] == [200]
