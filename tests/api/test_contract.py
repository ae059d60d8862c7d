"""The contract every organization-scoped endpoint keeps, checked for every routed action automatically.

The URL resolver is walked, so an endpoint added later is covered the moment it is routed: anonymous → 401,
no organization → 400, a non-member → the same 404 as an unknown organization, a role without the
declared permission → 403 ``permission_denied``, a plan without the declared feature → 403
``feature_not_in_plan``.
"""

import re

import pytest
from django.test import Client

from billing.models import Feature, Override
from config.permissions import MEMBER
from rbac.declarations import routed_actions
from rbac.models import Role
from rbac.services import membership_create

from ..conftest import client_for
from ..factories import make_user

pytestmark = pytest.mark.django_db

ACTIONS = sorted({(a.route, a.method, a.action, a.permission, a.feature) for a in routed_actions()})
IDS = [f"{method} {route}" for route, method, *_ in ACTIONS]
PERMISSION_GATED = [a for a in ACTIONS if a[3] != MEMBER]
FEATURE_GATED = [a for a in ACTIONS if a[4] is not None]


def _ids(actions):
    return [f"{method} {route}" for route, method, *_ in actions]


def _url(route: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", route)


def _call(client, method: str, route: str, **headers):
    return getattr(client, method.lower())(_url(route), data={}, content_type="application/json", **headers)


def test_every_routed_action_is_covered():
    assert len(ACTIONS) > 10
    assert FEATURE_GATED, "at least one action is plan-gated"


@pytest.mark.parametrize(("route", "method", "action", "permission", "feature"), ACTIONS, ids=IDS)
def test_anonymous_is_401(org_a, route, method, action, permission, feature):
    response = _call(Client(), method, route, HTTP_X_ORGANIZATION=org_a.slug)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("route", "method", "action", "permission", "feature"), ACTIONS, ids=IDS)
def test_without_organization_is_400(owner_a, route, method, action, permission, feature):
    response = _call(client_for(owner_a), method, route)
    assert response.status_code == 400
    assert response.json()["code"] == "organization_required"


@pytest.mark.parametrize(("route", "method", "action", "permission", "feature"), ACTIONS, ids=IDS)
def test_non_member_gets_404(owner_b, org_a, route, method, action, permission, feature):
    response = _call(client_for(owner_b, org_a), method, route)
    assert response.status_code == 404
    assert response.json()["code"] == "organization_not_found"


@pytest.mark.parametrize(
    ("route", "method", "action", "permission", "feature"), PERMISSION_GATED, ids=_ids(PERMISSION_GATED)
)
def test_role_without_the_permission_gets_403(org_a, route, method, action, permission, feature):
    empty = Role.objects.create(organization=org_a, key="nothing", name="Nothing", grants={})
    user = make_user()
    membership_create(user=user, organization=org_a, role=empty)
    response = _call(client_for(user, org_a), method, route)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission_denied"
    assert body["permission"] == permission


@pytest.mark.parametrize(("route", "method", "action", "permission", "feature"), FEATURE_GATED, ids=_ids(FEATURE_GATED))
def test_plan_without_the_feature_gets_403(owner_a, org_a, route, method, action, permission, feature):
    Override.objects.create(organization=org_a, feature=Feature.objects.get(code=feature), enabled=False)
    response = _call(client_for(owner_a, org_a), method, route)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "feature_not_in_plan"
    assert body["feature"] == feature
    assert body["plan"]["code"] in {"pro", "enterprise"}


@pytest.mark.parametrize(("route", "method", "action", "permission", "feature"), ACTIONS, ids=IDS)
def test_anonymous_is_401_for_an_unknown_organization_too(route, method, action, permission, feature):
    response = _call(Client(), method, route, HTTP_X_ORGANIZATION="no-such-organization")
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("route", "method", "action", "permission", "feature"), ACTIONS, ids=IDS)
def test_non_member_gets_the_404_of_an_unknown_organization_byte_for_byte(
    owner_b, org_a, route, method, action, permission, feature
):
    foreign = _call(client_for(owner_b, org_a), method, route)
    unknown = _call(client_for(owner_b), method, route, HTTP_X_ORGANIZATION="no-such-organization")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.content == unknown.content
    assert foreign["Content-Type"] == unknown["Content-Type"] == "application/problem+json"
