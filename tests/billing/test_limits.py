"""Limits at the edge, over the API: usage N-1 may create one more, N and N+1 may not; the refusal names the
limit and the usage. Concurrent creates at N-1 are in test_limit_race.py."""

import pytest

from billing.models import Override
from billing.services import override_save, subscription_change_plan
from rbac.models import Membership
from rbac.services import membership_set_active

from ..factories import make_member, make_user

pytestmark = pytest.mark.django_db

N = 3


def _seat_limit(org, value):
    Override.objects.filter(organization=org, limit="seats").delete()
    override_save(override=Override(organization=org, limit="seats", limit_value=value), actor=None)


@pytest.mark.parametrize(("used", "allowed"), [(N - 1, True), (N, False), (N + 1, False)], ids=["N-1", "N", "N+1"])
def test_seat_limit_at_the_edge_over_the_api(as_owner_a, org_a, used, allowed):
    # the owner holds one seat; add active members up to ``used``, and one inactive member to bring back
    for _ in range(used - 1):
        make_member(user=make_user(), organization=org_a, role="viewer")
    returning = make_member(user=make_user(), organization=org_a, role="viewer")
    membership_set_active(membership=returning, active=False, actor=None)
    _seat_limit(org_a, N)  # set last: usage N+1 means the limit was lowered under the usage
    assert Membership.objects.filter(organization=org_a, is_active=True).count() == used

    response = as_owner_a.post(f"/api/v1/members/{returning.pk}/activate/")
    if allowed:
        assert response.status_code == 200, response.content
        assert Membership.objects.filter(organization=org_a, is_active=True).count() == N
    else:
        assert response.status_code == 403
        body = response.json()
        assert (body["code"], body["limit"], body["value"], body["used"]) == ("plan_limit_reached", "seats", N, used)
        assert not Membership.objects.get(pk=returning.pk).is_active

    usage = {row["limit"]: row for row in as_owner_a.get("/api/v1/billing/usage/").json()["results"]}
    assert usage["seats"] == {"limit": "seats", "value": N, "used": N if allowed else used}


def test_a_raised_limit_applies_on_the_next_request(as_owner_a, org_a):
    make_member(user=make_user(), organization=org_a, role="viewer")
    returning = make_member(user=make_user(), organization=org_a, role="viewer")
    membership_set_active(membership=returning, active=False, actor=None)
    _seat_limit(org_a, 2)
    assert as_owner_a.post(f"/api/v1/members/{returning.pk}/activate/").status_code == 403
    _seat_limit(org_a, 3)
    assert as_owner_a.post(f"/api/v1/members/{returning.pk}/activate/").status_code == 200


def test_downgrade_counts_the_organizations_own_limit_overrides(as_owner_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    for _ in range(2):
        make_member(user=make_user(), organization=org_a, role="viewer")  # three seats; free has two
    refused = as_owner_a.post("/api/v1/billing/subscription/change-plan/", {"plan": "free"}, format="json")
    assert refused.status_code == 409
    assert refused.json()["exceeded"] == [{"limit": "seats", "value": 2, "used": 3}]
    assert "seats 3 > 2" in refused.json()["detail"]
    _seat_limit(org_a, 5)  # the organization keeps five seats whatever its plan
    response = as_owner_a.post("/api/v1/billing/subscription/change-plan/", {"plan": "free"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["limits"]["seats"] == 5


def test_same_plan_is_a_conflict(as_owner_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    response = as_owner_a.post("/api/v1/billing/subscription/change-plan/", {"plan": "pro"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "same_plan")


def test_a_custom_role_with_the_permission_may_change_the_plan(org_a, owner_a):
    from rbac.models import Role
    from rbac.services import membership_create

    from ..conftest import client_for

    role = Role.objects.create(
        organization=org_a, key="billing", name="Billing", grants={"billing.subscription.manage": "all"}
    )
    user = make_user()
    membership_create(user=user, organization=org_a, role=role)
    # Free: a paid plan would need the payment provider (402 here, where none is configured).
    response = client_for(user, org_a).post(
        "/api/v1/billing/subscription/change-plan/", {"plan": "free"}, format="json"
    )
    assert response.status_code == 200, response.content
    # the permission to change is not the permission to read: the role lacks billing.subscription.view
    assert client_for(user, org_a).get("/api/v1/billing/usage/").status_code == 403
