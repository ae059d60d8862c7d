"""Every plan-gated endpoint × every plan → allowed, or 403 ``feature_not_in_plan`` naming the cheapest plan that
has the feature; an override flips it on the very next request, both ways.

Which plan has which feature, and which plan is the cheapest with it, is written out by hand here: the data
migration and ``cheapest_plan_with`` must agree with it.
"""

import re
from decimal import Decimal

import pytest

from billing.models import Feature, Override, Plan
from billing.selectors import cheapest_plan_with
from billing.services import override_delete, override_save, subscription_change_plan
from rbac.declarations import routed_actions

pytestmark = pytest.mark.django_db

PRO = {
    "crm.custom_fields",
    "crm.import_export",
    "crm.campaigns",
    "pipelines.multiple",
    "analytics.forecast",
    "assistant.copilot",
    "integrations.api_keys",
    "integrations.webhooks",
}
ENTERPRISE_ONLY = {"rbac.custom_roles", "assistant.own_model_key"}
PLAN_FEATURES = {"free": set(), "pro": PRO, "enterprise": PRO | ENTERPRISE_ONLY}
CHEAPEST = {**dict.fromkeys(PRO, "pro"), **dict.fromkeys(ENTERPRISE_ONLY, "enterprise")}

GATED = sorted({(a.route, a.method, a.action, a.feature) for a in routed_actions() if a.feature})
IDS = [f"{method} {route}" for route, method, _action, _feature in GATED]
# One endpoint per gated feature, for the override round trips.
ONE_PER_FEATURE = sorted(
    {feature: (route, method, action, feature) for route, method, action, feature in GATED}.values()
)


def _call(client, method: str, route: str):
    url = re.sub(r"\{[^}]+\}", "1", route)
    return getattr(client, method.lower())(url, data={}, format="json")


def _is_feature_refusal(response) -> bool:
    return response.status_code == 403 and response.json().get("code") == "feature_not_in_plan"


def test_the_matrix_covers_every_gated_feature_that_has_an_endpoint():
    assert {feature for *_rest, feature in GATED} <= set(CHEAPEST)
    assert len(GATED) > 10


@pytest.mark.parametrize("plan", list(PLAN_FEATURES))
@pytest.mark.parametrize(("route", "method", "action", "feature"), GATED, ids=IDS)
def test_gated_endpoint_on_every_plan(as_owner_a, org_a, plan, route, method, action, feature):
    subscription_change_plan(organization=org_a, plan_code=plan, actor=None)
    response = _call(as_owner_a, method, route)
    if feature in PLAN_FEATURES[plan]:
        assert not _is_feature_refusal(response), response.content
        assert response.status_code != 403 or response.json()["code"] != "permission_denied"
    else:
        assert _is_feature_refusal(response), response.content
        body = response.json()
        assert body["feature"] == feature
        expected = Plan.objects.get(code=CHEAPEST[feature])
        assert body["plan"] == {"code": expected.code, "name": expected.name}
        assert expected.name in body["detail"]


@pytest.mark.parametrize(("route", "method", "action", "feature"), ONE_PER_FEATURE, ids=[f[3] for f in ONE_PER_FEATURE])
def test_an_override_grants_a_feature_on_the_next_request(as_owner_a, org_a, owner_a, route, method, action, feature):
    subscription_change_plan(organization=org_a, plan_code="free", actor=None)
    assert _is_feature_refusal(_call(as_owner_a, method, route))
    override = override_save(
        override=Override(organization=org_a, feature=Feature.objects.get(code=feature), reason="pilot"), actor=owner_a
    )
    assert not _is_feature_refusal(_call(as_owner_a, method, route))
    override_delete(override=override, actor=owner_a)
    assert _is_feature_refusal(_call(as_owner_a, method, route))


@pytest.mark.parametrize(("route", "method", "action", "feature"), ONE_PER_FEATURE, ids=[f[3] for f in ONE_PER_FEATURE])
def test_an_override_revokes_a_feature_on_the_next_request(as_owner_a, org_a, owner_a, route, method, action, feature):
    assert not _is_feature_refusal(_call(as_owner_a, method, route))  # enterprise has everything
    override_save(
        override=Override(organization=org_a, feature=Feature.objects.get(code=feature), enabled=False), actor=owner_a
    )
    assert _is_feature_refusal(_call(as_owner_a, method, route))


def test_cheapest_public_plan_is_named():
    campaigns = Feature.objects.get(code="crm.campaigns")
    assert cheapest_plan_with(feature="crm.campaigns").code == "pro"
    hidden = Plan.objects.create(code="hidden", name="Hidden", monthly_price=Decimal("1"), is_public=False)
    hidden.features.add(campaigns)
    assert cheapest_plan_with(feature="crm.campaigns").code == "pro"  # not offered to the public
    starter = Plan.objects.create(code="starter", name="Starter", monthly_price=Decimal("19"), sort_order=15)
    starter.features.add(campaigns)
    assert cheapest_plan_with(feature="crm.campaigns").code == "starter"
    assert cheapest_plan_with(feature="rbac.custom_roles").code == "enterprise"
    assert cheapest_plan_with(feature="no.such.feature") is None


def test_a_member_without_the_permission_is_told_so_before_the_plan_is_mentioned(org_a, member, as_owner_a):
    subscription_change_plan(organization=org_a, plan_code="free", actor=None)
    _viewer, as_viewer = member(org_a, "viewer")
    refused = as_viewer.post("/api/v1/roles/", {"name": "Closer", "permissions": {}}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    upsell = as_owner_a.post("/api/v1/roles/", {"name": "Closer", "permissions": {}}, format="json")
    assert (upsell.status_code, upsell.json()["code"]) == (403, "feature_not_in_plan")
