"""Deliveries in batches (decision 0016): one message per batch of an endpoint's deliveries, one kept-alive
connection per pinned address that never outlives the check before each request, outcomes committed together,
a batch out of time queueing the rest again, retries sharing messages, the endpoint's run of failures."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import timezone

from crm import services as crm
from integrations import delivery, relay
from integrations.choices import DeliveryStatus
from integrations.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint

from ..factories import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def messages(monkeypatch):
    """The delivery messages sent (each a list of delivery ids), instead of running them."""
    sent: list[list[int]] = []
    monkeypatch.setattr(relay, "dispatch", lambda ids, **kwargs: sent.append(list(ids)))
    return sent


def _leads(org, in_tenant, commit, count: int, prefix: str = "Lead") -> None:
    """``count`` leads created in one transaction: one relay, one batch."""
    with in_tenant(org), commit(), transaction.atomic():
        for index in range(count):
            crm.lead_create(actor=SYSTEM, name=f"{prefix} {index}")


def _only_pool():
    [pool] = delivery._pools.values()
    return pool


def test_the_relay_sends_one_message_per_batch_of_one_endpoints_deliveries(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit, messages, settings
):
    settings.WEBHOOK_DELIVERY_BATCH_SIZE = 3
    first, _ = make_endpoint(org_a, receiver.url)
    second, _ = make_endpoint(org_a, receiver.url)
    with in_tenant(org_a):
        OutboxEvent.objects.bulk_create(
            [OutboxEvent(type="lead.deleted", subject_type="lead", subject_id=str(n)) for n in range(7)]
        )
        with commit():
            assert relay.outbox_relay() == 7
        endpoint_of = dict(WebhookDelivery.objects.values_list("pk", "endpoint_id"))
    assert sorted(len(batch) for batch in messages) == [1, 1, 3, 3, 3, 3]
    assert all(len({endpoint_of[pk] for pk in batch}) == 1 for batch in messages), "one endpoint per message"
    assert sorted(pk for batch in messages for pk in batch) == sorted(endpoint_of)
    assert {endpoint_of[batch[0]] for batch in messages} == {first.pk, second.pk}


def test_a_batch_goes_out_on_one_kept_alive_connection_with_its_outcomes_committed_together(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit, django_assert_max_num_queries
):
    make_endpoint(org_a, receiver.url)
    _leads(org_a, in_tenant, commit, 5)

    assert len(receiver.wait_for(5)) == 5
    pool = _only_pool()
    assert (pool.num_connections, pool.num_requests) == (1, 5)
    with in_tenant(org_a):
        deliveries = list(WebhookDelivery.objects.all())
        assert WebhookAttempt.objects.count() == 5
    assert {d.status for d in deliveries} == {DeliveryStatus.SUCCEEDED}
    assert {d.claimed_at for d in deliveries} == {None}
    assert len({d.last_attempt_at for d in deliveries}) == 5, "each outcome carries its own time"

    # Queries of a batch do not grow with its size: claim, lock, attempts, outcomes (and savepoints).
    _leads(org_a, in_tenant, commit, 3, prefix="Counted")
    with in_tenant(org_a):
        ids = list(WebhookDelivery.objects.filter(status="succeeded").values_list("pk", flat=True))
        WebhookDelivery.objects.filter(pk__in=ids).update(status="pending", next_attempt_at=timezone.now())
        with django_assert_max_num_queries(10):
            results = delivery.attempt_many(delivery_ids=ids)
    assert set(results.values()) == {"succeeded"}
    assert len(ids) == 8


def test_a_kept_alive_connection_is_not_used_once_the_name_resolves_elsewhere(
    org_a,
    in_tenant,
    loopback,
    receiver,
    make_endpoint,
    resolver,
    commit,
):
    """The check before each batch resolves the name again: an open connection to the address it had does not
    carry a request once the name points at a forbidden address."""
    resolver({"hooks.example.test": ["127.0.0.1"]})
    make_endpoint(org_a, f"http://hooks.example.test:{receiver.port}/in")
    _leads(org_a, in_tenant, commit, 2, prefix="Before")
    assert len(receiver.wait_for(2)) == 2
    pool = _only_pool()
    assert (pool.num_connections, pool.num_requests) == (1, 2)

    resolver({"hooks.example.test": ["10.0.0.1"]})
    _leads(org_a, in_tenant, commit, 2, prefix="After")
    with in_tenant(org_a):
        refused = list(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING))
    assert len(refused) == 2
    assert all(d.last_error.startswith("Refused: hooks.example.test resolves to 10.0.0.1") for d in refused)
    assert len(receiver.received) == 2
    assert pool.num_requests == 2, "the kept-alive connection carried nothing more"


def test_a_kept_alive_connection_is_not_used_once_its_address_is_refused(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit
):
    make_endpoint(org_a, receiver.url)
    _leads(org_a, in_tenant, commit, 1, prefix="Allowed")
    receiver.wait_for(1)
    pool = _only_pool()

    loopback.WEBHOOK_ALLOW_LOOPBACK = False
    _leads(org_a, in_tenant, commit, 1, prefix="Refused")
    with in_tenant(org_a):
        [refused] = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
    assert refused.last_error.startswith("Refused: 127.0.0.1: a loopback address")
    assert (len(receiver.received), pool.num_requests) == (1, 1)


def test_a_batch_out_of_time_queues_the_rest_again(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit, messages, monkeypatch
):
    make_endpoint(org_a, receiver.url)
    _leads(org_a, in_tenant, commit, 4)
    [ids] = messages
    monkeypatch.setattr(delivery, "BATCH_SECONDS", 0.05)
    receiver.behaviour.delay_seconds = 0.1

    with in_tenant(org_a), commit():
        results = delivery.attempt_many(delivery_ids=ids)
    assert [results[pk] for pk in ids] == ["succeeded", "released", "released", "released"]
    assert messages[1] == ids[1:], "queued again at once"
    with in_tenant(org_a):
        released = list(WebhookDelivery.objects.filter(pk__in=ids[1:]))
    assert {(d.status, d.attempt_count, d.claimed_at) for d in released} == {(DeliveryStatus.PENDING, 0, None)}
    assert all(d.dispatched_at is not None for d in released)
    assert len(receiver.received) == 1


def test_failed_attempts_of_a_batch_share_retry_messages(
    org_a, in_tenant, loopback, receiver, make_endpoint, commit, messages, settings, monkeypatch
):
    settings.WEBHOOK_RETRY_JITTER = 0
    make_endpoint(org_a, receiver.url)
    receiver.behaviour.status = 503
    _leads(org_a, in_tenant, commit, 3)
    [ids] = messages
    countdowns: list[float | None] = []
    monkeypatch.setattr(
        relay,
        "dispatch",
        lambda ids, countdown=None, **kwargs: (messages.append(list(ids)), countdowns.append(countdown)),
    )
    with in_tenant(org_a), commit():
        results = delivery.attempt_many(delivery_ids=ids)
    assert set(results.values()) == {DeliveryStatus.PENDING}
    [retries] = messages[1:]
    assert sorted(retries) == sorted(ids)
    [countdown] = countdowns
    assert countdown is not None
    assert 4 < countdown <= 5, "when the first is due, 5 s after its request"


def test_retries_due_close_together_share_a_message():
    now = timezone.now()

    def item(pk: int, countdown: float | None):
        due = now + timedelta(seconds=countdown or 0)
        return SimpleNamespace(delivery=SimpleNamespace(pk=pk, next_attempt_at=due), countdown=countdown)

    items = [item(1, 5.0), item(2, 4.2), item(3, 5.9), item(4, None), item(5, 300.0), item(6, 5.1)]
    assert delivery._retry_groups(items, now=now) == [(4.2, [2, 1, 6]), (5.9, [3]), (300.0, [5])]
    later = now + timedelta(seconds=1)
    assert delivery._retry_groups(items, now=later)[0] == (3.2, [2, 1, 6]), "counted from the due time"


def test_a_success_within_a_batch_ends_the_endpoints_run_of_failures(
    org_a, in_tenant, loopback, receiver, make_endpoint, settings
):
    """Outcomes of a batch count as if recorded one by one: a success, then failures, starts a new run at the
    first failure after it; the old run (long enough to disable) does not disable the endpoint."""
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 72
    endpoint, _ = make_endpoint(org_a, receiver.url)
    now = timezone.now()
    with in_tenant(org_a):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=now - timedelta(hours=100))
        endpoint.refresh_from_db()

        def item(seconds: int, succeeded: bool):
            return delivery._Attempted(
                delivery=SimpleNamespace(endpoint_id=endpoint.pk, endpoint=endpoint),
                outcome=delivery.Outcome(succeeded=succeeded),
                at=now + timedelta(seconds=seconds),
            )

        delivery._endpoints_after([item(0, False), item(1, True), item(2, False), item(3, False)])
        endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.failing_since == now + timedelta(seconds=2)
