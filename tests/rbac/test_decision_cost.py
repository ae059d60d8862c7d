"""The whole authorization decision costs at most one SQL query when warm, and every kind of change a decision
depends on (role, custom role grants, membership, plan, override, an operator's plan edit) applies on the very
next request, after which the decision is warm again. Counted, not assumed."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Feature, Override, Plan
from billing.services import override_save, plan_changed, subscription_change_plan
from rbac.models import Membership, Role
from rbac.services import membership_change_role, membership_remove, membership_set_active, role_update, system_role

from ..conftest import client_for

pytestmark = pytest.mark.django_db

CURRENT = "/api/v1/organizations/current/"
DECISION_TABLES = ("rbac_", "billing_", "tenants_", "search_path")


def _measured(client, url=CURRENT):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    sql = [q["sql"] for q in queries.captured_queries]
    return response, sql


def _assert_warm(client, url=CURRENT):
    client.get(url)
    response, sql = _measured(client, url)
    assert response.status_code in (200, 404)
    assert [s for s in sql if any(table in s for table in DECISION_TABLES)] == []
    assert len(sql) <= 1, sql  # at most the signed-in user's row
    return response


def _membership(org, user):
    return Membership.objects.get(organization=org, user=user)


def _change_role(org, user, owner):
    membership_change_role(membership=_membership(org, user), role=system_role("manager"), actor=owner)
    return lambda body: body["role"] == "manager" and body["permissions"]["crm.lead.update"] == "all"


def _edit_custom_role(org, user, owner):
    role = Role.objects.create(organization=org, key="hunter", name="Hunter", grants={"crm.lead.view": "own"})
    membership_change_role(membership=_membership(org, user), role=role, actor=owner)
    client_for(user, org).get(CURRENT)  # warm with the old grants
    role_update(role=role, actor=owner, grants={"crm.lead.view": "all", "crm.lead.create": "all"})
    return lambda body: body["permissions"] == {"crm.lead.view": "all", "crm.lead.create": "all"}


def _change_plan(org, user, owner):
    subscription_change_plan(organization=org, plan_code="pro", actor=owner)
    return lambda body: body["plan"] == "pro" and "rbac.custom_roles" not in body["features"]


def _override(org, user, owner):
    override_save(
        override=Override(
            organization=org,
            feature=Feature.objects.get(code="rbac.custom_roles"),
            enabled=False,
            expires_at=timezone.now() + timedelta(days=1),
        ),
        actor=owner,
    )
    return lambda body: "rbac.custom_roles" not in body["features"]


def _operator_edits_the_plan(org, user, owner):
    plan = Plan.objects.get(code="enterprise")
    plan.features.remove(Feature.objects.get(code="crm.campaigns"))
    plan_changed(plan=plan, actor=None)
    return lambda body: "crm.campaigns" not in body["features"]


CHANGES = {
    "role changed": _change_role,
    "custom role grants edited": _edit_custom_role,
    "plan changed": _change_plan,
    "override added": _override,
    "operator edited the plan": _operator_edits_the_plan,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_change_applies_on_the_next_request_and_the_decision_is_warm_again(org_a, owner_a, member, change):
    user, client = member(org_a, "viewer")
    before = _assert_warm(client).json()
    applies = change(org_a, user, owner_a)
    assert not applies(before)
    response, sql = _measured(client)  # the very next request
    assert response.status_code == 200
    assert applies(response.json()), response.json()
    assert len(sql) <= 12, sql  # a cold decision is bounded too
    assert applies(_assert_warm(client).json())


@pytest.mark.parametrize("how", ["deactivated", "removed"])
def test_a_member_who_loses_the_membership_is_out_on_the_next_request(org_a, owner_a, member, how):
    user, client = member(org_a, "viewer")
    _assert_warm(client)
    if how == "deactivated":
        membership_set_active(membership=_membership(org_a, user), active=False, actor=owner_a)
    else:
        membership_remove(membership=_membership(org_a, user), actor=owner_a)
    response, _sql = _measured(client)
    assert response.status_code == 404
    assert response.json()["code"] == "organization_not_found"
    # the refusal is cached too: a former member costs no decision query either
    assert _assert_warm(client).status_code == 404


def test_the_decision_of_a_list_endpoint_is_warm(org_a, member):
    """On a data endpoint, the warm decision adds nothing to what the view itself reads."""
    _user, client = member(org_a, "manager")
    client.get("/api/v1/members/")
    response, sql = _measured(client, "/api/v1/members/")
    assert response.status_code == 200
    decision = [s for s in sql if "tenants_organization" in s or "billing_" in s or "search_path" in s]
    assert decision == []


def test_an_expiring_override_ends_on_time_even_when_the_decision_is_cached(as_owner_a, org_a, owner_a):
    """The cached decision may not outlive an override (or a trial) it was built on."""
    import time

    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    override_save(
        override=Override(
            organization=org_a,
            feature=Feature.objects.get(code="rbac.custom_roles"),
            expires_at=timezone.now() + timedelta(seconds=2),
        ),
        actor=owner_a,
    )
    assert "rbac.custom_roles" in as_owner_a.get(CURRENT).json()["features"]  # warm, with the override
    time.sleep(2.6)
    assert "rbac.custom_roles" not in as_owner_a.get(CURRENT).json()["features"]
    response = as_owner_a.post("/api/v1/roles/", {"name": "Late", "grants": {}}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "feature_not_in_plan")
