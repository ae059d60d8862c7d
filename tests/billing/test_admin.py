"""The operators' admin for plans, features, subscriptions, overrides, roles, memberships, invitations and the audit
trail: every page renders, the actions work, and every change is audited and applies on the next request."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Feature, Override, Plan, ProviderEvent, Subscription, UsageAlert
from identity.models import User
from rbac.models import AuditEntry, Invitation, Membership, Role
from rbac.services import invitation_create, system_role
from tenants.choices import OrganizationStatus

pytestmark = pytest.mark.django_db

APPS = ("billing", "rbac")
MODELS = sorted((model for model in admin.site._registry if model._meta.app_label in APPS), key=lambda m: m._meta.label)


@pytest.fixture
def operator():
    user = User.objects.create_superuser("operator-billing@crm.test", "Operator-Password-1")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def rows(org_a, owner_a):
    """At least one row of every model the admin shows."""
    invitation_create(organization=org_a, email="admin-smoke@example.test", role=system_role("viewer"), actor=owner_a)
    Override.objects.create(organization=org_a, limit="seats", limit_value=10, reason="smoke")
    # read-only records of the payment provider's events and of usage alerts (decision 0014)
    ProviderEvent.objects.create(
        event_id="evt_smoke", type="invoice.paid", created=timezone.now(), organization=org_a, outcome="applied"
    )
    UsageAlert.objects.create(
        organization=org_a, limit="seats", threshold=80, period_start=timezone.now().date(), used=8, value=10
    )
    return org_a


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_model_of_billing_and_rbac_is_registered():
    assert {m._meta.label for m in MODELS} == {
        "billing.Plan",
        "billing.Feature",
        "billing.Subscription",
        "billing.Override",
        "billing.ProviderEvent",
        "billing.UsageAlert",
        "rbac.Role",
        "rbac.Membership",
        "rbac.Invitation",
        "rbac.AuditEntry",
    }


@pytest.mark.parametrize("model", MODELS, ids=[m._meta.label for m in MODELS])
def test_admin_pages_render(operator, rows, model):
    changelist = operator.get(_url(model, "changelist"))
    assert changelist.status_code == 200
    search = operator.get(_url(model, "changelist"), {"q": "org"})
    assert search.status_code == 200
    obj = model.objects.order_by("pk").first()
    assert obj is not None, f"no {model._meta.label} row to show"
    assert operator.get(_url(model, "change", obj.pk)).status_code == 200
    add = operator.get(_url(model, "add"))
    assert add.status_code == (200 if changelist.context["has_add_permission"] else 403)


def test_subscription_filters(operator, org_a):
    pro = Plan.objects.get(code="pro")
    url = _url(Subscription, "changelist")
    assert operator.get(url, {"plan__id__exact": pro.pk}).status_code == 200
    response = operator.get(url, {"status__exact": "trialing", "q": org_a.name})
    assert response.status_code == 200
    assert org_a.pk in {s.organization_id for s in response.context["cl"].result_list}


def _action(operator, action: str, subscription: Subscription):
    return operator.post(
        _url(Subscription, "changelist"), {"action": action, "_selected_action": [subscription.pk]}, follow=True
    )


def test_change_plan_actions_exist_for_every_plan(operator):
    response = operator.get(_url(Subscription, "changelist"))
    choices = {value for value, _label in response.context["action_form"].fields["action"].choices}
    assert {f"change_plan_to_{code}" for code in Plan.objects.values_list("code", flat=True)} <= choices
    assert {"extend_trial_14_days", "suspend", "reactivate"} <= choices
    assert "delete_selected" not in choices  # a subscription ends through the state machine, not a delete


def test_change_plan_action_applies_on_the_next_request(operator, as_owner_a, org_a):
    subscription = Subscription.objects.get(organization=org_a)
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "enterprise"
    response = _action(operator, "change_plan_to_pro", subscription)
    assert response.status_code == 200
    assert "moved to Pro" in response.content.decode()
    assert as_owner_a.get("/api/v1/organizations/current/").json()["plan"] == "pro"
    entry = AuditEntry.objects.get(organization=org_a, action="subscription.plan_changed")
    assert (entry.before["plan"], entry.after["plan"], entry.actor_label) == (
        "enterprise",
        "pro",
        "operator-billing@crm.test",
    )


def test_change_plan_action_reports_a_refused_downgrade(operator, org_a, member):
    member(org_a, "viewer")
    member(org_a, "viewer")  # three seats; free allows two
    subscription = Subscription.objects.get(organization=org_a)
    response = _action(operator, "change_plan_to_free", subscription)
    assert response.status_code == 200
    assert "seats 3 &gt; 2" in response.content.decode()
    assert Subscription.objects.get(pk=subscription.pk).plan.code == "enterprise"


def test_extend_trial_action(operator, org_a):
    subscription = Subscription.objects.get(organization=org_a)
    ends = subscription.trial_ends_at
    _action(operator, "extend_trial_14_days", subscription)
    subscription.refresh_from_db()
    assert (subscription.trial_ends_at - ends).days == 14
    assert AuditEntry.objects.filter(organization=org_a, action="subscription.trial_extended").exists()


def test_suspend_and_reactivate_actions_apply_on_the_next_request(operator, as_owner_a, org_a):
    subscription = Subscription.objects.get(organization=org_a)
    assert as_owner_a.get("/api/v1/organizations/current/").status_code == 200
    _action(operator, "suspend", subscription)
    assert org_a.__class__.objects.get(pk=org_a.pk).status == OrganizationStatus.SUSPENDED
    assert as_owner_a.get("/api/v1/organizations/current/").status_code == 404
    _action(operator, "reactivate", subscription)
    assert as_owner_a.get("/api/v1/organizations/current/").status_code == 200
    actions = list(AuditEntry.objects.filter(organization=org_a, target_type="organization").values_list("action"))
    assert actions == [("organization.reactivated",), ("organization.suspended",)]


def _change_form_data(response) -> dict:
    """The POST body the change page would send back unchanged: the form and its inlines."""
    data = {}

    def add(form):
        for field in form:
            value = field.value()
            if value is None or value is False:
                continue
            data[field.html_name] = "on" if value is True else value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def test_plan_edited_with_its_inlines_applies_to_every_tenant_on_the_next_request(operator, as_owner_a, org_a):
    from billing.services import subscription_change_plan

    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    assert as_owner_a.post("/api/v1/roles/", {"name": "A", "grants": {}}, format="json").status_code == 403
    pro = Plan.objects.get(code="pro")
    page = operator.get(_url(Plan, "change", pro.pk))
    data = _change_form_data(page)
    count = int(data["plan_features-TOTAL_FORMS"])
    data["plan_features-TOTAL_FORMS"] = count + 1
    data[f"plan_features-{count}-feature"] = Feature.objects.get(code="rbac.custom_roles").pk
    seats = next(key for key, value in data.items() if key.startswith("limits-") and value == "seats")
    data[seats.replace("-limit", "-value")] = 30
    response = operator.post(_url(Plan, "change", pro.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""

    assert as_owner_a.post("/api/v1/roles/", {"name": "B", "grants": {}}, format="json").status_code == 201
    assert as_owner_a.get("/api/v1/billing/subscription/").json()["limits"]["seats"] == 30
    entry = AuditEntry.objects.filter(action="plan.changed", target_id=pro.pk).latest("pk")
    assert "rbac.custom_roles" not in entry.before["features"]
    assert "rbac.custom_roles" in entry.after["features"]
    assert (entry.before["limits"]["seats"], entry.after["limits"]["seats"]) == (25, 30)
    assert entry.actor_label == "operator-billing@crm.test"


def test_override_added_in_the_admin_applies_on_the_next_request(operator, as_owner_a, org_a):
    from billing.services import subscription_change_plan

    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    response = operator.post(
        _url(Override, "add"),
        {
            "organization": org_a.pk,
            "feature": Feature.objects.get(code="rbac.custom_roles").pk,
            "enabled": "on",
            "limit": "",
            "limit_value": "",
            "expires_at_0": "2099-01-01",
            "expires_at_1": "00:00:00",
            "reason": "pilot",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert as_owner_a.post("/api/v1/roles/", {"name": "Pilot", "grants": {}}, format="json").status_code == 201
    override = Override.objects.get(organization=org_a, reason="pilot")
    assert AuditEntry.objects.filter(organization=org_a, action="override.saved", target_id=override.pk).exists()
    operator.post(_url(Override, "delete", override.pk), {"post": "yes"})
    assert not Override.objects.filter(pk=override.pk).exists()
    assert as_owner_a.post("/api/v1/roles/", {"name": "After", "grants": {}}, format="json").status_code == 403


def test_an_override_changes_a_feature_or_a_limit_not_both(operator, org_a):
    response = operator.post(
        _url(Override, "add"),
        {"organization": org_a.pk, "feature": Feature.objects.get(code="crm.campaigns").pk, "limit": "seats"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert not Override.objects.filter(organization=org_a, limit="seats").exists()


def test_memberships_roles_and_the_audit_trail_are_read_only(operator, org_a, owner_a):
    """Changing them in the admin would bypass the last-owner rule, the audit trail and the cache."""
    membership = Membership.objects.get(organization=org_a, user=owner_a)
    for model, obj in (
        (Membership, membership),
        (Role, system_role("owner")),
        (AuditEntry, AuditEntry.objects.first()),
    ):
        assert operator.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
        assert operator.post(_url(model, "change", obj.pk), {"is_active": ""}).status_code == 403
        assert operator.get(_url(model, "add")).status_code == 403
    assert Membership.objects.filter(pk=membership.pk, is_active=True).exists()
    assert operator.get(_url(Invitation, "add")).status_code == 403


def test_features_mirror_the_registry(operator):
    feature = Feature.objects.get(code="crm.campaigns")
    assert operator.post(_url(Feature, "delete", feature.pk), {"post": "yes"}).status_code == 403
    response = operator.post(_url(Feature, "change", feature.pk), {"description": "Campaigns by e-mail"})
    assert response.status_code == 302
    feature.refresh_from_db()
    assert (feature.code, feature.description) == ("crm.campaigns", "Campaigns by e-mail")
