"""Paid plans through the payment provider: the real ``stripe`` library against a local server speaking its API
(tests/billing/stripe_server.py), and webhook events signed in the test with the provider's scheme.

An Owner cannot obtain a paid plan without the provider's confirmation: change-plan answers a checkout URL (or
402 without a provider) and the plan changes only when a verified ``checkout.session.completed`` arrives. Events
apply once and in order; a forged signature is 400 and changes nothing; a failed payment makes the subscription
past due, and dunning moves it to Free after the grace period.
"""

from __future__ import annotations

import datetime
import time

import pytest
from django.core import mail
from django.utils import timezone

from billing.choices import SubscriptionStatus
from billing.dunning import subscription_dunning
from billing.errors import PlanLimitReached
from billing.models import Plan, ProviderEvent
from billing.services import subscription_change_plan
from rbac.models import AuditEntry

from .conftest import CHANGE, WEBHOOK, checkout, deliver, pay, stored_subscription
from .stripe_server import add_invoices, event, signed

pytestmark = pytest.mark.django_db

# --- no provider: paid plans only through trials and the admin ---


def test_without_a_provider_a_paid_plan_is_402_never_free(as_owner_a, org_a, settings):
    settings.STRIPE_API_KEY = ""
    before = stored_subscription(org_a)
    for plan in ("pro", "enterprise"):
        response = as_owner_a.post(CHANGE, {"plan": plan}, format="json")
        assert (response.status_code, response.json()["code"]) == (402, "payment_provider_not_configured")
    after = stored_subscription(org_a)
    assert (after.plan_id, after.status, after.trial_ends_at) == (before.plan_id, before.status, before.trial_ends_at)
    assert as_owner_a.post("/api/v1/billing/portal/").json()["code"] == "payment_provider_not_configured"
    assert as_owner_a.get("/api/v1/billing/invoices/").json()["count"] == 0
    # the operators' door still works: the admin's change is the same service
    assert subscription_change_plan(organization=org_a, plan_code="pro", actor=None).plan.code == "pro"


def test_the_webhook_refuses_everything_without_a_secret(api, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = deliver(api, event("invoice.paid", {"object": "invoice"}))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_signature")
    assert not ProviderEvent.objects.exists()


# --- checkout ---


def test_checkout_then_payment_confirmed_activates_the_plan(api, as_owner_a, org_a, owner_a, provider):
    trial = stored_subscription(org_a)
    session = checkout(as_owner_a, org_a, provider, plan="pro", interval="yearly")

    # nothing changed before the provider confirms
    pending = stored_subscription(org_a)
    assert (pending.plan.code, pending.status) == (trial.plan.code, SubscriptionStatus.TRIALING)
    assert as_owner_a.get("/api/v1/billing/subscription/").json()["plan"]["code"] == "enterprise"
    [customer] = provider.customers.values()
    assert (customer["email"], customer["metadata"]) == (owner_a.email, {"organization": str(org_a.pk)})
    [form] = provider.calls("POST", "/v1/checkout/sessions")
    assert form["mode"] == "subscription"
    assert form["line_items[0][price]"] == "price_pro_y"
    assert form["subscription_data[metadata][organization]"] == str(org_a.pk)
    assert AuditEntry.objects.filter(organization=org_a, action="subscription.checkout_started").exists()

    provider_subscription = pay(api, org_a, provider, session)

    active = stored_subscription(org_a)
    assert (active.plan.code, active.status, active.interval) == ("pro", SubscriptionStatus.ACTIVE, "yearly")
    assert active.provider_subscription_id == provider_subscription["id"]
    assert active.provider_customer_id == customer["id"]
    assert as_owner_a.get("/api/v1/billing/subscription/").json()["plan"]["code"] == "pro"  # on the next request
    entry = AuditEntry.objects.get(organization=org_a, action="subscription.checkout_completed")
    assert (entry.before["plan"], entry.before["status"], entry.after["plan"], entry.after["status"]) == (
        "enterprise",
        "trialing",
        "pro",
        "active",
    )


def test_an_unpaid_checkout_changes_nothing(api, as_owner_a, org_a, provider):
    session = checkout(as_owner_a, org_a, provider)
    response = deliver(api, event("checkout.session.completed", {**session, "status": "complete"}))
    assert response.json()["outcome"] == "ignored"  # payment_status: unpaid (a delayed payment method)
    assert stored_subscription(org_a).status == SubscriptionStatus.TRIALING
    # an incomplete subscription (first payment not through) is not a plan either
    incomplete = provider.add_subscription(
        customer=session["customer"], price="price_pro_m", status="incomplete", metadata=session["metadata"]
    )
    assert deliver(api, event("customer.subscription.created", incomplete)).json()["outcome"] == "ignored"
    assert stored_subscription(org_a).plan.code == "enterprise"


def test_a_plan_without_a_provider_price_cannot_be_bought(as_owner_a, org_a, provider):
    Plan.objects.filter(code="pro").update(provider_yearly_price="")
    response = as_owner_a.post(CHANGE, {"plan": "pro", "interval": "yearly"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "plan_not_purchasable")


# --- signatures ---


@pytest.mark.parametrize(
    "forgery",
    ["wrong_secret", "tampered_body", "no_header", "old_timestamp", "garbage_header"],
)
def test_a_forged_event_is_400_and_changes_nothing(api, as_owner_a, org_a, provider, forgery):
    session = checkout(as_owner_a, org_a, provider)
    provider_subscription = provider.add_subscription(
        customer=session["customer"], price="price_pro_m", metadata=session["metadata"]
    )
    body = event(
        "checkout.session.completed",
        {**session, "payment_status": "paid", "status": "complete", "subscription": provider_subscription["id"]},
    )
    payload, header = signed(body)
    headers = {"HTTP_STRIPE_SIGNATURE": header}
    if forgery == "wrong_secret":
        payload, header = signed(body, secret="whsec_someone_else")
        headers = {"HTTP_STRIPE_SIGNATURE": header}
    elif forgery == "tampered_body":
        payload = payload.replace('"pro"', '"enterprise"')
    elif forgery == "no_header":
        headers = {}
    elif forgery == "old_timestamp":
        payload, header = signed(body, timestamp=int(time.time()) - 3600)
        headers = {"HTTP_STRIPE_SIGNATURE": header}
    else:
        headers = {"HTTP_STRIPE_SIGNATURE": "t=abc,v1=zz"}
    response = api.post(WEBHOOK, data=payload, content_type="application/json", **headers)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_signature")
    assert response["Content-Type"] == "application/problem+json"
    subscription = stored_subscription(org_a)
    assert (subscription.plan.code, subscription.status, subscription.provider_subscription_id) == (
        "enterprise",
        SubscriptionStatus.TRIALING,
        "",
    )
    assert not ProviderEvent.objects.exists()


# --- exactly once, in order ---


def test_a_duplicate_event_applies_once(api, as_owner_a, org_a, provider):
    session = checkout(as_owner_a, org_a, provider)
    provider_subscription = provider.add_subscription(
        customer=session["customer"], price="price_pro_m", metadata=session["metadata"]
    )
    body = event(
        "checkout.session.completed",
        {**session, "payment_status": "paid", "status": "complete", "subscription": provider_subscription["id"]},
    )
    assert deliver(api, body).json()["outcome"] == "applied"
    assert deliver(api, body).json()["outcome"] == "duplicate"
    assert deliver(api, body).json()["outcome"] == "duplicate"
    assert ProviderEvent.objects.filter(event_id=body["id"]).count() == 1
    assert AuditEntry.objects.filter(organization=org_a, action="subscription.checkout_completed").count() == 1


def test_events_out_of_order_do_not_undo_newer_ones(api, org_a, paying, provider):
    now = int(time.time())
    past_due = {**paying, "status": "past_due"}
    active = {**paying, "status": "active"}
    # the provider sent "active" (t-10) then "past_due" (t); they arrive the other way round
    assert deliver(api, event("customer.subscription.updated", past_due, created=now)).json()["outcome"] == "applied"
    assert stored_subscription(org_a).status == SubscriptionStatus.PAST_DUE
    late = deliver(api, event("customer.subscription.updated", active, created=now - 10))
    assert late.json()["outcome"] == "stale"
    assert stored_subscription(org_a).status == SubscriptionStatus.PAST_DUE
    # a newer one applies
    assert deliver(api, event("invoice.paid", _invoice(paying), created=now + 5)).json()["outcome"] == "applied"
    assert stored_subscription(org_a).status == SubscriptionStatus.ACTIVE
    statuses = list(
        AuditEntry.objects.filter(organization=org_a, target_type="subscription")
        .order_by("pk")
        .values_list("action", "after__status")
    )
    assert statuses[-2:] == [
        ("subscription.provider_updated", "past_due"),
        ("subscription.payment_recovered", "active"),
    ]


def test_events_of_an_unknown_subscription_are_recorded_and_ignored(api, provider):
    body = event("invoice.payment_failed", {"object": "invoice", "customer": "cus_nobody", "subscription": "sub_x"})
    assert deliver(api, body).json()["outcome"] == "ignored"
    assert ProviderEvent.objects.get(event_id=body["id"]).outcome == "ignored"
    assert deliver(api, event("charge.refunded", {"object": "charge"})).json()["outcome"] == "ignored"


def _invoice(provider_subscription: dict) -> dict:
    return {
        "object": "invoice",
        "id": "in_test",
        "customer": provider_subscription["customer"],
        "parent": {"subscription_details": {"subscription": provider_subscription["id"]}},
    }


# --- dunning ---


def test_payment_fails_past_due_then_free_after_the_grace(
    api, org_a, owner_a, paying, provider, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):  # mail leaves after commit
        response = deliver(api, event("invoice.payment_failed", _invoice(paying)))
    assert response.json()["outcome"] == "applied"
    subscription = stored_subscription(org_a)
    assert (subscription.plan.code, subscription.status) == ("pro", SubscriptionStatus.PAST_DUE)
    assert subscription.past_due_since is not None
    [message] = mail.outbox
    assert message.to == [owner_a.email]
    assert "Payment failed" in message.subject

    # within the grace: nothing happens
    assert subscription_dunning(now=timezone.now() + datetime.timedelta(days=6))["downgraded"] == 0
    assert stored_subscription(org_a).plan.code == "pro"

    # after it: Free, the provider subscription canceled, owners told, audited
    with django_capture_on_commit_callbacks(execute=True):
        result = subscription_dunning(now=timezone.now() + datetime.timedelta(days=8))
    assert result["downgraded"] == 1
    downgraded = stored_subscription(org_a)
    assert (downgraded.plan.code, downgraded.status, downgraded.provider_subscription_id) == (
        "free",
        SubscriptionStatus.ACTIVE,
        "",
    )
    assert provider.calls("DELETE", f"/v1/subscriptions/{paying['id']}") == [{}]
    assert "Moved to the Free plan" in mail.outbox[-1].subject
    entry = AuditEntry.objects.get(organization=org_a, action="subscription.dunning_downgraded")
    assert (entry.before["plan"], entry.before["status"], entry.after["plan"]) == ("pro", "past_due", "free")
    assert subscription_dunning(now=timezone.now() + datetime.timedelta(days=9))["downgraded"] == 0  # idempotent

    # the canceled subscription's own events arrive later and change nothing
    deleted = {**paying, "status": "canceled"}
    later = int((timezone.now() + datetime.timedelta(days=8, minutes=1)).timestamp())
    assert deliver(api, event("customer.subscription.deleted", deleted, created=later)).json()["outcome"] == "ignored"
    assert stored_subscription(org_a).plan.code == "free"


def test_deleting_the_organization_stops_the_provider_charging_it(
    org_a, paying, provider, as_owner_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner_a.delete(f"/api/v1/organizations/current/?confirm={org_a.slug}")
    assert response.status_code == 202, response.content
    subscription = stored_subscription(org_a)
    assert (subscription.status, subscription.provider_subscription_id) == (SubscriptionStatus.CANCELED, "")
    assert provider.calls("DELETE", f"/v1/subscriptions/{paying['id']}") == [{}]
    entry = AuditEntry.objects.get(organization=org_a, action="subscription.canceled_with_organization")
    assert (entry.before["status"], entry.after["status"]) == ("active", "canceled")


def test_a_payment_within_the_grace_keeps_the_plan(api, org_a, paying, provider):
    deliver(api, event("invoice.payment_failed", _invoice(paying)))
    deliver(api, event("invoice.paid", _invoice(paying)))
    subscription = stored_subscription(org_a)
    assert (subscription.status, subscription.past_due_since) == (SubscriptionStatus.ACTIVE, None)
    assert subscription_dunning(now=timezone.now() + datetime.timedelta(days=30))["downgraded"] == 0


def test_dunning_keeps_the_data_over_free_limits_read_only(api, org_a, paying, provider, member, as_owner_a):
    for _ in range(3):
        member(org_a, "viewer")  # four seats; Free allows two
    deliver(api, event("invoice.payment_failed", _invoice(paying)))
    subscription_dunning(now=timezone.now() + datetime.timedelta(days=8))
    assert stored_subscription(org_a).plan.code == "free"
    members = as_owner_a.get("/api/v1/members/").json()
    assert members["count"] == 4  # nobody removed
    with pytest.raises(PlanLimitReached):  # over Free's limit: nothing more is added (the read-only rule)
        member(org_a, "viewer")


def test_beat_runs_dunning_and_usage_reports(settings):
    entries = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert entries["billing.dunning"]["schedule"] <= 3600
    assert entries["billing.report_usage"]["schedule"] <= 3600


def test_the_provider_canceling_moves_to_canceled_and_free_entitlements(api, org_a, paying, as_owner_a):
    response = deliver(api, event("customer.subscription.deleted", {**paying, "status": "canceled"}))
    assert response.json()["outcome"] == "applied"
    subscription = stored_subscription(org_a)
    assert subscription.status == SubscriptionStatus.CANCELED
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "free"


# --- downgrades and upgrades of a paying organization ---


def test_a_downgrade_to_free_takes_effect_at_the_end_of_the_paid_period(api, as_owner_a, org_a, paying, provider):
    response = as_owner_a.post(CHANGE, {"plan": "free"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["outcome"], body["plan"]["code"], body["scheduled_plan"], body["cancel_at_period_end"]) == (
        "scheduled",
        "pro",
        "free",
        True,
    )
    assert provider.subscriptions[paying["id"]]["cancel_at_period_end"] is True
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "pro"  # paid until the period ends
    # the period ends: the provider ends the subscription
    deliver(api, event("customer.subscription.deleted", {**paying, "status": "canceled"}))
    subscription = stored_subscription(org_a)
    assert (subscription.plan.code, subscription.status, subscription.scheduled_plan_id) == ("free", "active", None)
    assert AuditEntry.objects.filter(organization=org_a, action="subscription.scheduled_change_applied").exists()


def test_a_scheduled_downgrade_applies_at_the_period_end_even_without_an_event(as_owner_a, org_a, paying):
    as_owner_a.post(CHANGE, {"plan": "free"}, format="json")
    end = stored_subscription(org_a).current_period_end
    assert subscription_dunning(now=end - datetime.timedelta(minutes=1))["scheduled_applied"] == 0
    assert subscription_dunning(now=end + datetime.timedelta(minutes=1))["scheduled_applied"] == 1
    assert stored_subscription(org_a).plan.code == "free"


def test_a_downgrade_past_the_lower_plans_limits_is_409_listing_them(as_owner_a, org_a, paying, member, provider):
    for _ in range(2):
        member(org_a, "viewer")  # three seats; Free allows two
    response = as_owner_a.post(CHANGE, {"plan": "free"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "downgrade_blocked")
    assert response.json()["exceeded"] == [{"limit": "seats", "value": 2, "used": 3}]
    assert provider.subscriptions[paying["id"]]["cancel_at_period_end"] is False
    assert stored_subscription(org_a).scheduled_plan_id is None


def test_an_upgrade_applies_when_the_provider_says_it_is_paid(api, as_owner_a, org_a, paying, provider):
    response = as_owner_a.post(CHANGE, {"plan": "enterprise"}, format="json")
    assert (response.status_code, response.json()["outcome"]) == (202, "pending")
    assert stored_subscription(org_a).plan.code == "pro"
    [update] = [
        form for form in provider.calls("POST", f"/v1/subscriptions/{paying['id']}") if "items[0][price]" in form
    ]
    assert (update["items[0][price]"], update["payment_behavior"]) == ("price_ent_m", "pending_if_incomplete")
    # the provider took the prorated payment and sends the updated subscription
    updated = provider.subscriptions[paying["id"]]
    assert deliver(api, event("customer.subscription.updated", updated)).json()["outcome"] == "applied"
    assert stored_subscription(org_a).plan.code == "enterprise"


# --- portal and invoices ---


def test_the_customer_portal(as_owner_a, org_a, paying, provider, member):
    response = as_owner_a.post("/api/v1/billing/portal/")
    assert response.status_code == 200, response.content
    assert response.json()["url"] == f"{provider.url}/portal/{paying['customer']}"
    _user, manager = member(org_a, "manager")  # may see billing, not manage it
    assert manager.post("/api/v1/billing/portal/").status_code == 403


def test_no_portal_before_a_billing_account(as_owner_a, provider):
    response = as_owner_a.post("/api/v1/billing/portal/")
    assert (response.status_code, response.json()["code"]) == (409, "no_billing_account")


def test_invoices_are_listed_from_the_provider_paginated(as_owner_a, org_a, paying, provider, member):
    add_invoices(provider, paying["customer"], 130)  # two calls to the provider (100 per call)
    add_invoices(provider, "cus_someone_else", 3)
    first = as_owner_a.get("/api/v1/billing/invoices/?page_size=50").json()
    assert (first["count"], len(first["results"])) == (130, 50)
    assert first["results"][0]["number"] == "INV-0001"
    last = as_owner_a.get("/api/v1/billing/invoices/?page_size=50&page=3").json()
    assert (len(last["results"]), last["next"]) == (30, None)
    assert {row["amount_paid"] for row in last["results"]} == {4900}
    _user, manager = member(org_a, "manager")
    assert manager.get("/api/v1/billing/invoices/").status_code == 200
    _user, rep = member(org_a, "sales_rep")
    assert rep.get("/api/v1/billing/invoices/").status_code == 403


# --- the provider down or slow ---


def test_a_provider_outage_is_503_changes_nothing_and_opens_the_breaker(as_owner_a, org_a, provider):
    provider.fail_next = 100
    response = as_owner_a.post(CHANGE, {"plan": "pro"}, format="json")
    assert (response.status_code, response.json()["code"]) == (503, "payment_provider_unavailable")
    assert response["Retry-After"]
    assert stored_subscription(org_a).provider_customer_id == ""
    calls = len(provider.requests)
    again = as_owner_a.post(CHANGE, {"plan": "pro"}, format="json")
    assert again.status_code == 503
    assert len(provider.requests) == calls  # skipped while the breaker is open: no second timeout paid


def test_a_hanging_provider_costs_the_timeout(as_owner_a, org_a, provider, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    provider.hang = 2.0
    started = time.monotonic()
    response = as_owner_a.post(CHANGE, {"plan": "pro"}, format="json")
    assert (response.status_code, response.json()["code"]) == (503, "payment_provider_unavailable")
    assert time.monotonic() - started < 1.9


def test_a_past_due_organization_fixes_its_card_before_changing_plan(api, as_owner_a, org_a, paying, provider):
    deliver(api, event("invoice.payment_failed", _invoice(paying)))
    response = as_owner_a.post(CHANGE, {"plan": "enterprise"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "subscription_past_due")
    assert not provider.calls("POST", "/v1/checkout/sessions")[1:]  # only the first checkout ever happened


def test_a_scheduled_downgrade_can_be_taken_back(as_owner_a, org_a, paying, provider):
    as_owner_a.post(CHANGE, {"plan": "free"}, format="json")
    response = as_owner_a.post(CHANGE, {"plan": "pro"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["outcome"], response.json()["scheduled_plan"]) == ("changed", None)
    assert provider.subscriptions[paying["id"]]["cancel_at_period_end"] is False
    assert AuditEntry.objects.filter(organization=org_a, action="subscription.downgrade_unscheduled").exists()


def test_a_lower_paid_plan_starts_with_the_next_period(api, as_owner_a, org_a, provider):
    session = checkout(as_owner_a, org_a, provider, plan="enterprise")
    paying = pay(api, org_a, provider, session, created=int(time.time()) - 60)
    assert stored_subscription(org_a).plan.code == "enterprise"
    response = as_owner_a.post(CHANGE, {"plan": "pro"}, format="json")
    assert (response.status_code, response.json()["outcome"], response.json()["scheduled_plan"]) == (
        200,
        "scheduled",
        "pro",
    )
    [update] = [f for f in provider.calls("POST", f"/v1/subscriptions/{paying['id']}") if "items[0][price]" in f]
    assert (update["items[0][price]"], update["proration_behavior"]) == ("price_pro_m", "none")
    # the provider's update (new price, same period) does not move the plan before the period ends
    current = provider.subscriptions[paying["id"]]
    deliver(api, event("customer.subscription.updated", current))
    assert stored_subscription(org_a).plan.code == "enterprise"
    # the next period starts: the scheduled plan applies
    item = current["items"]["data"][0]
    renewed_start = item["current_period_end"]
    item["current_period_start"], item["current_period_end"] = renewed_start, renewed_start + 30 * 86400
    deliver(api, event("customer.subscription.updated", current, created=int(time.time()) + 1))
    subscription = stored_subscription(org_a)
    assert (subscription.plan.code, subscription.scheduled_plan_id) == ("pro", None)
