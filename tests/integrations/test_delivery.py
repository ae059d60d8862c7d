"""Delivery from the outbox, eager Celery: relay, signing, retries, logging, disabling, rollbacks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from crm import services as crm
from integrations.choices import DeliveryStatus, DisabledReason
from integrations.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.outbox import _RelayAfterCommit
from integrations.relay import deliveries_dispatch_due
from integrations.tasks import deliver_webhook_task, outbox_sweep_all_task
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """``with commit():`` runs what the block queues after commit (eager Celery runs the tasks at once)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _lead(org, in_tenant, commit, name="Ada Lovelace"):
    with in_tenant(org), commit():
        return crm.lead_create(actor=SYSTEM, name=name, email="ada@example.test")


def _delivery(org, in_tenant, **filters) -> WebhookDelivery:
    with in_tenant(org):
        return WebhookDelivery.objects.select_related("endpoint", "event").get(**filters)


def test_an_event_is_delivered_signed_and_verifiable(org_a, in_tenant, loopback, receiver, make_endpoint, commit):
    endpoint, secret = make_endpoint(org_a, receiver.url)
    lead = _lead(org_a, in_tenant, commit)

    [request] = receiver.wait_for(1)
    with in_tenant(org_a):
        event = OutboxEvent.objects.get(type="lead.created", subject_id=str(lead.pk))
    assert request.webhook_id == f"msg_{event.id.hex}"
    assert request.headers["content-type"] == "application/json"
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "lead.created"
    assert body["id"] == str(event.id)
    assert body["subject"] == {"type": "lead", "id": str(lead.pk)}
    assert body["data"]["name"] == "Ada Lovelace"
    assert body["actor"] is None

    tampered = request.body.replace(b"Ada Lovelace", b"Eve Lovelace")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body, {**request.headers, "webhook-id": "msg_other"})

    delivery = _delivery(org_a, in_tenant, event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempt_count == 1
    with in_tenant(org_a):
        attempt = WebhookAttempt.objects.get(delivery=delivery)
        assert OutboxEvent.objects.get(pk=event.pk).relayed_at is not None
    assert attempt.succeeded
    assert attempt.response_status == 200
    assert attempt.response_body == "ok"
    assert attempt.latency_ms is not None


def test_receiver_down_then_up_is_delivered_after_retries_with_one_webhook_id(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit
):
    make_endpoint(org_a, receiver.url, ["lead.created"])
    receiver.stop()  # down: connection refused
    lead = _lead(org_a, in_tenant, commit)

    delivery = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempt_count == 1
    assert delivery.schedule_step == 1
    assert "connect" in delivery.last_error.lower()
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 4 <= wait <= 6, "first retry after 5 s ± 20 %"

    receiver.start()  # up again, on the same port, but failing for a while
    receiver.behaviour.status = 503
    with in_tenant(org_a), commit():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert deliver_webhook_task.delay(delivery.pk).get() == DeliveryStatus.PENDING
    delivery = _delivery(org_a, in_tenant, pk=delivery.pk)
    assert delivery.last_response_status == 503
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 240 <= wait <= 360, "second retry after 5 min ± 20 %"

    receiver.behaviour.status = 204
    with in_tenant(org_a), commit():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert deliver_webhook_task.delay(delivery.pk).get() == "succeeded"
    delivery = _delivery(org_a, in_tenant, pk=delivery.pk)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempt_count == 3
    assert {request.webhook_id for request in receiver.received} == {delivery.webhook_id}
    assert len(receiver.received) == 2  # the first attempt never reached it
    with in_tenant(org_a):
        assert WebhookDelivery.objects.filter(event=delivery.event).count() == 1
        statuses = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("response_status", flat=True))
    assert statuses == [204, 503, None]  # newest first


def test_a_scheduled_message_that_arrives_early_does_nothing(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit
):
    make_endpoint(org_a, receiver.url)
    receiver.behaviour.status = 500
    lead = _lead(org_a, in_tenant, commit)
    delivery = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    with in_tenant(org_a):
        assert deliver_webhook_task.delay(delivery.pk).get() == "not_due"
    assert len(receiver.received) == 1


def test_spent_retries_fail_the_delivery(org_a, in_tenant, loopback, receiver, make_endpoint, commit, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [10, 10]
    make_endpoint(org_a, receiver.url)
    receiver.behaviour.status = 500
    lead = _lead(org_a, in_tenant, commit)
    delivery = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    for _ in range(2):
        with in_tenant(org_a), commit():
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
            deliver_webhook_task.delay(delivery.pk)
    delivery = _delivery(org_a, in_tenant, pk=delivery.pk)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempt_count == 3
    assert delivery.next_attempt_at is None
    assert delivery.last_error == "HTTP 500"
    with in_tenant(org_a):
        assert deliver_webhook_task.delay(delivery.pk).get() == DeliveryStatus.FAILED  # idempotent
    assert len(receiver.received) == 3


def test_an_endpoint_failing_for_the_period_is_disabled_and_owners_are_told(
    org_a, owner_a, in_tenant, loopback, receiver, make_endpoint, commit, settings
):
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 72
    endpoint, _ = make_endpoint(org_a, receiver.url)
    receiver.behaviour.status = 500
    with in_tenant(org_a):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=71))
    _lead(org_a, in_tenant, commit, name="First")
    with in_tenant(org_a):
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active, "71 hours is not enough"
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=73))
    mail.outbox.clear()
    _lead(org_a, in_tenant, commit, name="Second")

    with in_tenant(org_a):
        endpoint = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert not endpoint.is_active
    assert endpoint.disabled_reason == DisabledReason.FAILING
    assert endpoint.disabled_notified_at is not None
    [message] = mail.outbox
    assert message.to == [owner_a.email]
    assert endpoint.url in message.body

    # Retries of a disabled endpoint's deliveries end as failed, without a request.
    requests = len(receiver.received)
    with in_tenant(org_a), commit():
        WebhookDelivery.objects.filter(endpoint=endpoint).update(next_attempt_at=timezone.now())
        pending = list(WebhookDelivery.objects.filter(endpoint=endpoint, status="pending").values_list("pk", flat=True))
        assert pending
        for pk in pending:
            assert deliver_webhook_task.delay(pk).get() == "endpoint_disabled"
    assert len(receiver.received) == requests
    # The notification is sent once per disabling.
    from integrations.tasks import notify_endpoint_disabled_task

    with in_tenant(org_a):
        assert notify_endpoint_disabled_task.delay(endpoint.pk).get() == 0
    assert len(mail.outbox) == 1


def test_a_success_ends_the_run_of_failures(org_a, in_tenant, loopback, receiver, make_endpoint, commit):
    endpoint, _ = make_endpoint(org_a, receiver.url)
    receiver.behaviour.status = 500
    _lead(org_a, in_tenant, commit, name="First")
    with in_tenant(org_a):
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is not None
    receiver.behaviour.status = 200
    _lead(org_a, in_tenant, commit, name="Second")
    with in_tenant(org_a):
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


@transaction.atomic
def _create_then_fail(name: str) -> None:
    crm.lead_create(actor=SYSTEM, name=name)
    raise RuntimeError("the change fails after recording its event")


def test_a_rolled_back_change_emits_nothing(
    org_a, in_tenant, loopback, receiver, make_endpoint, django_capture_on_commit_callbacks
):
    make_endpoint(org_a, receiver.url)
    with in_tenant(org_a):
        before = OutboxEvent.objects.count()
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with pytest.raises(RuntimeError):
                _create_then_fail("Never")
        assert callbacks == []
        assert OutboxEvent.objects.count() == before
        assert not WebhookDelivery.objects.exists()
    assert receiver.received == []


def test_a_rolled_back_savepoint_keeps_the_relay_of_the_rest(org_a, in_tenant, django_capture_on_commit_callbacks):
    with in_tenant(org_a), django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            with pytest.raises(RuntimeError):
                _create_then_fail("Undone")
            crm.lead_create(actor=SYSTEM, name="Kept")
            crm.lead_create(actor=SYSTEM, name="Kept too")
    relays = [hook for hook in callbacks if isinstance(hook, _RelayAfterCommit)]  # other apps may add their own
    assert len(relays) == 1, "one relay per transaction, however many events"


def test_only_active_subscribed_endpoints_get_a_delivery(org_a, in_tenant, loopback, receiver, make_endpoint, commit):
    leads_only, _ = make_endpoint(org_a, receiver.url, ["lead.created", "lead.updated"])
    make_endpoint(org_a, receiver.url, ["deal.won"])
    make_endpoint(org_a, receiver.url, ["*"], is_active=False)
    everything, _ = make_endpoint(org_a, receiver.url, ["*"])
    lead = _lead(org_a, in_tenant, commit)
    with in_tenant(org_a):
        endpoints = set(
            WebhookDelivery.objects.filter(event__subject_id=str(lead.pk)).values_list("endpoint_id", flat=True)
        )
    assert endpoints == {leads_only.pk, everything.pk}
    assert len(receiver.wait_for(2)) == 2


def test_after_a_rotation_both_secrets_sign_for_the_grace_period(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit
):
    from integrations import services

    endpoint, old = make_endpoint(org_a, receiver.url)
    with in_tenant(org_a):
        endpoint, new = services.webhook_endpoint_rotate_secret(endpoint=endpoint, actor=None)
    assert new != old
    assert new.startswith("whsec_")
    _lead(org_a, in_tenant, commit, name="During")
    [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(request.body, request.headers)
    Webhook(old).verify(request.body, request.headers)

    with in_tenant(org_a):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    _lead(org_a, in_tenant, commit, name="After")
    request = receiver.wait_for(2)[1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


def test_the_response_is_read_up_to_the_cap_and_logged_truncated(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit, settings
):
    settings.WEBHOOK_MAX_RESPONSE_BYTES = 8 * 1024
    make_endpoint(org_a, receiver.url)
    receiver.behaviour.body = b"x" * (256 * 1024)
    lead = _lead(org_a, in_tenant, commit)
    delivery = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    with in_tenant(org_a):
        attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert attempt.response_body == "x" * 2048


def test_redirects_are_not_followed(org_a, in_tenant, loopback, receiver, make_endpoint, commit):
    make_endpoint(org_a, receiver.url)
    receiver.behaviour.status = 307
    receiver.behaviour.headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    lead = _lead(org_a, in_tenant, commit)
    delivery = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_response_status == 307
    assert "not followed" in delivery.last_error
    assert len(receiver.received) == 1


def test_a_slow_receiver_times_out(org_a, in_tenant, loopback, receiver, make_endpoint, commit, settings):
    settings.WEBHOOK_READ_TIMEOUT = 0.3
    make_endpoint(org_a, receiver.url)
    receiver.behaviour.hold_first = 1
    receiver.behaviour.hold_seconds = 3
    lead = _lead(org_a, in_tenant, commit)
    delivery = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == "Timed out waiting for the response."


def test_the_sweep_relays_bulk_rows_and_queues_due_retries(org_a, in_tenant, loopback, receiver, make_endpoint, commit):
    endpoint, _ = make_endpoint(org_a, receiver.url)
    with in_tenant(org_a):
        # Written without record() (a bulk insert): no commit hook, only the sweep relays it.
        event = OutboxEvent.objects.create(type="lead.deleted", subject_type="lead", subject_id="999", payload={})
    with commit():
        outbox_sweep_all_task.delay()
    [request] = receiver.wait_for(1)
    assert request.webhook_id == f"msg_{event.id.hex}"

    # A retry scheduled beyond the countdown horizon has no message: the sweep queues it when due.
    with in_tenant(org_a):
        delivery = WebhookDelivery.objects.get(event=event)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status="pending", next_attempt_at=timezone.now() - timedelta(seconds=1), dispatched_at=None
        )
        with commit():
            assert deliveries_dispatch_due() == 1
        assert deliveries_dispatch_due() == 0, "dispatched once, not on every sweep"
    assert len(receiver.wait_for(2)) == 2


def test_payload_is_the_documented_envelope(org_a, in_tenant, loopback, receiver, make_endpoint, commit):
    import jsonschema

    from integrations.events import envelope_schema, payload_schema

    make_endpoint(org_a, receiver.url)
    _lead(org_a, in_tenant, commit)
    body = json.loads(receiver.wait_for(1)[0].body)
    jsonschema.validate(body, envelope_schema())
    jsonschema.validate(body["data"], payload_schema(body["type"]))


def test_an_unexpected_sending_error_is_a_logged_failed_attempt(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit, monkeypatch
):
    from integrations import delivery

    def broken(*args, **kwargs):
        raise RuntimeError("surprise")

    monkeypatch.setattr(delivery, "post", broken)
    make_endpoint(org_a, receiver.url)
    lead = _lead(org_a, in_tenant, commit)
    found = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    assert found.status == DeliveryStatus.PENDING
    assert found.last_error == "Unexpected error: RuntimeError"
    assert found.schedule_step == 1


def test_the_retry_schedule_is_documented_and_may_come_from_the_environment(settings):
    from integrations.delivery import retry_delay

    settings.WEBHOOK_RETRY_JITTER = 0
    assert [retry_delay(step) for step in range(8)] == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert sum(retry_delay(step) for step in range(7)) / 3600 == pytest.approx(27.6, abs=0.1)
    settings.WEBHOOK_RETRY_SCHEDULE = "1, 2,3"
    assert [retry_delay(step) for step in range(4)] == [1, 2, 3, None]
    settings.WEBHOOK_RETRY_JITTER = 0.2
    assert all(0.8 <= retry_delay(0) <= 1.2 for _ in range(50))


def test_the_sweep_sends_again_a_delivery_whose_worker_died(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit
):
    """A claim on a row no attempt holds is a dead worker's: the sweep sends the delivery again at once, not
    after the broker's visibility timeout. A claim within its grace is left alone (its worker is about to
    lock the row). tests/faults/ kills a real worker."""
    from integrations.relay import CLAIM_GRACE

    make_endpoint(org_a, receiver.url)
    receiver.behaviour.status = 500
    lead = _lead(org_a, in_tenant, commit)
    delivery = _delivery(org_a, in_tenant, event__subject_id=str(lead.pk))
    assert delivery.claimed_at is None, "the outcome clears the claim"
    receiver.behaviour.status = 200
    now = timezone.now()
    with in_tenant(org_a):
        pending = WebhookDelivery.objects.filter(pk=delivery.pk)
        pending.update(next_attempt_at=now - timedelta(seconds=1), dispatched_at=now, claimed_at=now)
        assert deliveries_dispatch_due() == 0, "claimed a moment ago: its worker is alive"
        pending.update(claimed_at=now - CLAIM_GRACE - timedelta(seconds=1))
        with commit():
            assert deliveries_dispatch_due() == 1
        assert deliveries_dispatch_due() == 0, "sent once"
    receiver.wait_for(2)
    delivery = _delivery(org_a, in_tenant, pk=delivery.pk)
    assert (delivery.status, delivery.claimed_at) == (DeliveryStatus.SUCCEEDED, None)


def test_deliveries_the_broker_could_not_take_are_left_to_the_sweep(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit
):
    """With the broker unreachable (its breaker open) publishing fails at once; the deliveries are marked
    unsent so the first sweep after the broker is back sends them, instead of waiting for them to go stale."""
    from config.breaker import breaker_for
    from config.celery import app
    from integrations.relay import outbox_relay

    make_endpoint(org_a, receiver.url)
    broker = breaker_for(app.conf.broker_url)
    app.conf.task_always_eager = False
    broker.failed("broker")
    try:
        with in_tenant(org_a):
            with commit():  # the commit hook cannot queue the relay: the event waits in the outbox
                lead = crm.lead_create(actor=SYSTEM, name="Broker down")
            event = OutboxEvent.objects.get(subject_id=str(lead.pk), type="lead.created")
            assert event.relayed_at is None
            with commit():  # a relay that runs meanwhile creates the delivery but cannot send its message
                assert outbox_relay() == 1
            delivery = WebhookDelivery.objects.get(event=event)
            assert delivery.dispatched_at is None
    finally:
        app.conf.task_always_eager = True
        broker.reset()
    with commit():
        outbox_sweep_all_task.delay()
    [request] = receiver.wait_for(1)
    assert request.webhook_id == delivery.webhook_id
