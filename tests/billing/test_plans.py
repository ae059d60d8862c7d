"""Plans decide features and limits; overrides flip them; changes apply on the very next request."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.choices import SubscriptionStatus
from billing.entitlements import compute_entitlements
from billing.errors import PlanLimitReached
from billing.features import Feature, Limit
from billing.models import Feature as FeatureRow
from billing.models import Override, Plan, Subscription
from billing.services import (
    override_delete,
    override_save,
    subscription_change_plan,
    subscription_expire_trials,
    subscription_start,
)
from rbac.models import AuditEntry
from rbac.services import membership_create

from ..factories import make_user

pytestmark = pytest.mark.django_db

# Written out by hand: which plan has which feature (the data migration must match).
PLAN_FEATURES = {
    "free": set(),
    "pro": {
        "crm.custom_fields",
        "crm.import_export",
        "crm.campaigns",
        "pipelines.multiple",
        "analytics.forecast",
        "assistant.copilot",
        "integrations.api_keys",
        "integrations.webhooks",
    },
}
PLAN_FEATURES["enterprise"] = PLAN_FEATURES["pro"] | {"rbac.custom_roles", "assistant.own_model_key"}


def test_public_plans_need_no_login(api):
    response = api.get("/api/v1/plans/")
    assert response.status_code == 200
    plans = response.json()["results"]
    assert [plan["code"] for plan in plans] == ["free", "pro", "enterprise"]
    pro = plans[1]
    assert pro["trial_days"] == 14
    assert pro["limits"]["seats"] == 25
    assert set(pro["features"]) == PLAN_FEATURES["pro"]


def test_every_limit_is_in_every_plan_with_null_for_unlimited(api):
    """Enterprise used to leave seats, contacts and deals out, which a client could not tell from "unknown"."""
    plans = {plan["code"]: plan for plan in api.get("/api/v1/plans/").json()["results"]}
    every = {item.value for item in Limit}
    assert all(set(plan["limits"]) == every for plan in plans.values())
    enterprise = plans["enterprise"]["limits"]
    assert (enterprise["seats"], enterprise["contacts"], enterprise["deals"]) == (None, None, None)
    assert plans["free"]["limits"]["seats"] == 2


def test_the_subscription_and_usage_say_unlimited_alike(as_owner_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="enterprise", actor=None)
    body = as_owner_a.get("/api/v1/billing/subscription/").json()
    usage = {row["limit"]: row["value"] for row in as_owner_a.get("/api/v1/billing/usage/").json()["results"]}
    assert set(body["limits"]) == set(body["plan"]["limits"]) == set(usage) == {item.value for item in Limit}
    assert body["limits"]["seats"] is None
    assert body["limits"] == usage


def test_the_schema_says_null_is_unlimited(api):
    schema = api.get("/api/schema/?format=json").json()
    plan = schema["components"]["schemas"]["PlanOutput"]["properties"]["limits"]
    limits = schema["components"]["schemas"][plan["allOf"][0]["$ref"].rsplit("/", 1)[1]]
    assert set(limits["properties"]) == set(limits["required"]) == {item.value for item in Limit}
    seats = limits["properties"]["seats"]
    assert (seats["type"], seats["nullable"]) == ("integer", True)
    assert "`null`: unlimited" in seats["description"]


def test_feature_registry_matches_the_database():
    assert set(FeatureRow.objects.values_list("code", flat=True)) == {item.value for item in Feature}


@pytest.mark.parametrize("plan", ["free", "pro", "enterprise"])
@pytest.mark.parametrize("feature", [item.value for item in Feature])
def test_every_feature_on_every_plan(org_a, plan, feature):
    subscription_change_plan(organization=org_a, plan_code=plan, actor=None)
    entitlements, _ttl = compute_entitlements(organization=org_a)
    assert entitlements.has(feature) == (feature in PLAN_FEATURES[plan])


@pytest.mark.parametrize("plan", ["free", "pro", "enterprise"])
def test_custom_roles_endpoint_follows_the_plan(as_owner_a, org_a, plan):
    subscription_change_plan(organization=org_a, plan_code=plan, actor=None)
    response = as_owner_a.post("/api/v1/roles/", {"name": f"Role {plan}", "grants": {}}, format="json")
    if "rbac.custom_roles" in PLAN_FEATURES[plan]:
        assert response.status_code == 201
    else:
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "feature_not_in_plan"
        assert body["plan"] == {"code": "enterprise", "name": "Enterprise"}


def test_override_flips_a_feature_on_the_next_request(as_owner_a, org_a, owner_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    assert as_owner_a.post("/api/v1/roles/", {"name": "A", "grants": {}}, format="json").status_code == 403
    override = override_save(
        override=Override(organization=org_a, feature=FeatureRow.objects.get(code="rbac.custom_roles")), actor=owner_a
    )
    assert as_owner_a.post("/api/v1/roles/", {"name": "B", "grants": {}}, format="json").status_code == 201
    override_delete(override=override, actor=owner_a)
    assert as_owner_a.post("/api/v1/roles/", {"name": "C", "grants": {}}, format="json").status_code == 403


def test_expired_override_no_longer_applies(org_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    Override.objects.create(
        organization=org_a,
        feature=FeatureRow.objects.get(code="rbac.custom_roles"),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    entitlements, _ttl = compute_entitlements(organization=org_a)
    assert not entitlements.has("rbac.custom_roles")


def test_operator_plan_edit_applies_to_every_tenant_on_next_request(as_owner_a, org_a):
    from billing.services import plan_changed

    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    assert as_owner_a.post("/api/v1/roles/", {"name": "A", "grants": {}}, format="json").status_code == 403
    pro = Plan.objects.get(code="pro")
    pro.features.add(FeatureRow.objects.get(code="rbac.custom_roles"))
    plan_changed(plan=pro, actor=None)
    assert as_owner_a.post("/api/v1/roles/", {"name": "B", "grants": {}}, format="json").status_code == 201


def test_decision_costs_no_query_when_warm_and_sees_changes_next_request(as_owner_a, org_a, owner_a):
    as_owner_a.get("/api/v1/billing/subscription/")
    with CaptureQueriesContext(connection) as queries:
        response = as_owner_a.get("/api/v1/organizations/current/")
    assert response.status_code == 200
    decision_tables = ("rbac_", "billing_", "tenants_")
    assert not [q["sql"] for q in queries.captured_queries if any(t in q["sql"] for t in decision_tables)]
    assert len(queries.captured_queries) <= 1  # the JWT's user row, nothing else
    subscription_change_plan(organization=org_a, plan_code="free", actor=owner_a)
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "free"


def test_usage_reports_each_limit(as_owner_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    rows = {row["limit"]: row for row in as_owner_a.get("/api/v1/billing/usage/").json()["results"]}
    assert rows["seats"] == {"limit": "seats", "value": 25, "used": 1}
    assert rows["api_calls_per_day"]["value"] == 100000


def test_subscription_endpoint(as_owner_a):
    body = as_owner_a.get("/api/v1/billing/subscription/").json()
    assert body["plan"]["code"] == "enterprise"
    assert "rbac.custom_roles" in body["features"]


def test_downgrade_blocked_when_usage_exceeds(as_owner_a, org_a, member):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    member(org_a, "viewer")
    member(org_a, "viewer")  # three seats used; free allows two
    response = as_owner_a.post("/api/v1/billing/subscription/change-plan/", {"plan": "free"}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "downgrade_blocked"
    assert body["exceeded"] == [{"limit": "seats", "value": 2, "used": 3}]
    assert Subscription.objects.get(organization=org_a).plan.code == "pro"


def test_change_plan_needs_the_permission_and_is_audited(as_owner_a, org_a, member):
    _user, admin = member(org_a, "admin")
    assert admin.post("/api/v1/billing/subscription/change-plan/", {"plan": "pro"}, format="json").status_code == 403
    # Paid plans are no longer handed out by this endpoint: without a payment provider it is 402 and nothing
    # changes (tests/billing/test_payments.py covers checkout with one). Free still applies at once.
    paid = as_owner_a.post("/api/v1/billing/subscription/change-plan/", {"plan": "pro", "interval": "yearly"})
    assert (paid.status_code, paid.json()["code"]) == (402, "payment_provider_not_configured")
    assert Subscription.objects.get(organization=org_a).plan.code == "enterprise"
    response = as_owner_a.post("/api/v1/billing/subscription/change-plan/", {"plan": "free", "interval": "yearly"})
    assert response.status_code == 200
    assert (response.json()["plan"]["code"], response.json()["outcome"]) == ("free", "changed")
    assert response.json()["interval"] == "yearly"
    entry = AuditEntry.objects.filter(organization=org_a, action="subscription.plan_changed").latest("created_at")
    assert entry.before["plan"] == "enterprise"
    assert entry.after["plan"] == "free"
    assert entry.actor_label == "owner@org-a.test"
    unknown = as_owner_a.post("/api/v1/billing/subscription/change-plan/", {"plan": "platinum"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "plan_not_found"


def test_sign_up_starts_a_pro_trial_that_falls_back_to_free(org_a):
    Subscription.objects.filter(organization=org_a).delete()
    subscription = subscription_start(organization=org_a)
    assert subscription.plan.code == "pro"
    assert subscription.status == SubscriptionStatus.TRIALING
    assert subscription.trial_ends_at > timezone.now() + timedelta(days=13)
    Subscription.objects.filter(pk=subscription.pk).update(trial_ends_at=timezone.now() - timedelta(minutes=1))
    entitlements, _ttl = compute_entitlements(organization=org_a)
    assert entitlements.plan_code == "free"  # even before the sweep runs
    assert subscription_expire_trials() == 1
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.status) == ("free", SubscriptionStatus.ACTIVE)
    assert subscription_expire_trials() == 0  # idempotent


@pytest.mark.parametrize(("seats", "allowed"), [(3, True), (2, False)])
def test_seat_limit_at_the_edge(org_a, owner_a, seats, allowed):
    # org A has one seat used (its owner); adding a second member on a limit of N.
    override_save(override=Override(organization=org_a, limit="seats", limit_value=seats - 1), actor=None)
    user = make_user()
    if allowed:
        membership_create(user=user, organization=org_a, role="viewer")
    else:
        with pytest.raises(PlanLimitReached) as raised:
            membership_create(user=user, organization=org_a, role="viewer")
        assert raised.value.extra == {"limit": "seats", "value": 1, "used": 1}


def test_seat_limit_n_minus_one_n_n_plus_one_over_the_api(org_a, owner_a, as_owner_a, member):
    override_save(override=Override(organization=org_a, limit="seats", limit_value=2), actor=None)
    member(org_a, "viewer")  # N-1 → N: allowed
    with pytest.raises(PlanLimitReached):
        member(org_a, "viewer")  # N → N+1: refused


def test_plan_limit_error_shape(org_a, owner_a, api, unique_email, django_capture_on_commit_callbacks):
    override_save(override=Override(organization=org_a, limit="seats", limit_value=1), actor=None)
    from rbac.services import invitation_create, system_role

    _invitation, token = invitation_create(
        organization=org_a, email=unique_email(), role=system_role("viewer"), actor=owner_a
    )
    response = api.post(
        "/api/v1/invitations/accept/",
        {"token": token, "password": "A-long-enough-pass-123", "first_name": "New"},
        format="json",
    )
    assert response.status_code == 403
    body = response.json()
    assert (body["code"], body["limit"], body["value"], body["used"]) == ("plan_limit_reached", "seats", 1, 1)
