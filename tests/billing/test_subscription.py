"""The subscription state machine: sign-up trial, the beat task that ends trials, operator trial extensions and
the allowed status transitions; the subscription endpoint shows the effective entitlements."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from billing.choices import SubscriptionStatus
from billing.errors import InvalidTransition, NoTrialToExtend
from billing.models import Feature, Override, Subscription
from billing.services import (
    override_save,
    subscription_change_plan,
    subscription_extend_trial,
    subscription_transition,
)
from billing.tasks import expire_trials_task
from rbac.models import AuditEntry, Membership

pytestmark = pytest.mark.django_db


def test_sign_up_starts_a_pro_trial(api, unique_email):
    email = unique_email("founder")
    response = api.post(
        "/api/v1/auth/register/",
        {
            "email": email,
            "password": "A-long-enough-pass-123",
            "first_name": "Fay",
            "organization_name": "Trial Co",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    slug = response.json()["organization"]["slug"]
    subscription = Subscription.objects.select_related("plan").get(organization__slug=slug)
    assert (subscription.plan.code, subscription.status) == ("pro", SubscriptionStatus.TRIALING)
    assert timedelta(days=13, hours=23) < subscription.trial_ends_at - timezone.now() <= timedelta(days=14)
    assert Membership.objects.get(organization__slug=slug, user__email=email).role.key == "owner"
    assert AuditEntry.objects.filter(organization__slug=slug, action="subscription.started").exists()
    client = api.__class__()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}", HTTP_X_ORGANIZATION=slug)
    body = client.get("/api/v1/billing/subscription/").json()
    assert (body["plan"]["code"], body["status"]) == ("pro", "trialing")


def test_beat_runs_the_trial_expiry_task():
    entries = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "billing.expire_trials" in entries
    assert entries["billing.expire_trials"]["schedule"] <= 3600
    assert expire_trials_task.name == "billing.expire_trials"


def test_an_ended_trial_falls_back_to_free_through_the_task(as_owner_a, org_a):
    subscription = Subscription.objects.get(organization=org_a)
    Subscription.objects.filter(pk=subscription.pk).update(
        status=SubscriptionStatus.TRIALING, trial_ends_at=timezone.now() - timedelta(minutes=1)
    )
    assert expire_trials_task.delay().get() >= 1
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.status, subscription.trial_ends_at) == ("free", "active", None)
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "free"
    entry = AuditEntry.objects.get(organization=org_a, action="subscription.trial_ended")
    assert (entry.before["plan"], entry.after["plan"], entry.actor_label) == ("enterprise", "free", "")
    assert expire_trials_task.delay().get() == 0  # idempotent


def test_a_running_trial_is_extended(org_a):
    ends = Subscription.objects.get(organization=org_a).trial_ends_at
    subscription = subscription_extend_trial(organization=org_a, days=14, actor=None)
    assert subscription.status == SubscriptionStatus.TRIALING
    assert subscription.trial_ends_at == ends + timedelta(days=14)


def test_a_free_organization_gets_a_new_pro_trial(as_owner_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="free", actor=None)
    subscription = subscription_extend_trial(organization=org_a, days=14, actor=None)
    assert (subscription.plan.code, subscription.status) == ("pro", SubscriptionStatus.TRIALING)
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "pro"


def test_a_paying_subscription_has_no_trial_to_extend(org_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    with pytest.raises(NoTrialToExtend):
        subscription_extend_trial(organization=org_a, days=14, actor=None)


def test_status_transitions_follow_the_state_machine(as_owner_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    assert subscription_transition(organization=org_a, status="past_due").status == "past_due"
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "pro"  # grace while past due
    with pytest.raises(InvalidTransition):
        subscription_transition(organization=org_a, status="trialing")
    assert subscription_transition(organization=org_a, status="canceled").canceled_at is not None
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "free"  # canceled: free on next request
    assert subscription_transition(organization=org_a, status="active").canceled_at is None
    actions = list(
        AuditEntry.objects.filter(organization=org_a, action="subscription.status_changed")
        .order_by("pk")
        .values_list("after__status", flat=True)
    )
    assert actions == ["past_due", "canceled", "active"]


def test_subscription_endpoint_shows_the_effective_features_and_limits(as_owner_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    override_save(
        override=Override(organization=org_a, feature=Feature.objects.get(code="rbac.custom_roles")), actor=None
    )
    override_save(override=Override(organization=org_a, limit="seats", limit_value=40), actor=None)
    body = as_owner_a.get("/api/v1/billing/subscription/").json()
    assert body["plan"]["code"] == "pro"
    assert "rbac.custom_roles" not in body["plan"]["features"]  # the plan as sold
    assert "rbac.custom_roles" in body["features"]  # what this organization has
    assert (body["plan"]["limits"]["seats"], body["limits"]["seats"]) == (25, 40)


@pytest.mark.parametrize(("role", "expected"), [("manager", 200), ("sales_rep", 403), ("viewer", 403)])
def test_billing_reads_need_the_permission(org_a, member, role, expected):
    _user, client = member(org_a, role)
    assert client.get("/api/v1/billing/subscription/").status_code == expected
    assert client.get("/api/v1/billing/usage/").status_code == expected
    change = client.post("/api/v1/billing/subscription/change-plan/", {"plan": "pro"}, format="json")
    assert (change.status_code, change.json()["code"]) == (403, "permission_denied")


def test_the_current_period_follows_the_plan_and_interval(org_a):
    trial = Subscription.objects.get(organization=org_a)
    assert trial.current_period_end == trial.trial_ends_at  # a trial's period is the trial
    monthly = subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    assert (monthly.current_period_end - monthly.current_period_start).days in (28, 29, 30, 31)
    yearly = subscription_change_plan(organization=org_a, plan_code="enterprise", interval="yearly", actor=None)
    assert (yearly.current_period_end - yearly.current_period_start).days in (365, 366)
    free = subscription_change_plan(organization=org_a, plan_code="free", actor=None)
    assert free.current_period_end is None  # free has no billing period


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [("2025-01-31", 1, "2025-02-28"), ("2024-01-31", 1, "2024-02-29"), ("2025-11-15", 2, "2026-01-15")],
)
def test_months_are_added_on_the_calendar(start, months, end):
    from datetime import datetime

    from billing.services import _add_months

    assert _add_months(datetime.fromisoformat(start), months).date().isoformat() == end
