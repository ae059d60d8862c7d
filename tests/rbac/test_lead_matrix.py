"""Every system role × every lead action × own/other's record → the outcome the grant table declares.

The expectations are written out by hand here (not derived from rbac/roles.py), so a change to the
default grants must change this table too.
"""

import pytest

from crm.services import lead_create
from tests.factories import SYSTEM

from ..problems import field_error

pytestmark = pytest.mark.django_db

ALL, OWN, NONE = "all", "own", None

# role: {action: scope}
EXPECTED = {
    "owner": dict.fromkeys(["view", "create", "update", "delete", "convert"], ALL),
    "admin": dict.fromkeys(["view", "create", "update", "delete", "convert"], ALL),
    "manager": dict.fromkeys(["view", "create", "update", "delete", "convert"], ALL),
    "sales_rep": {"view": OWN, "create": ALL, "update": OWN, "delete": OWN, "convert": OWN},
    "support": {"view": ALL, "create": NONE, "update": NONE, "delete": NONE, "convert": NONE},
    "viewer": {"view": ALL, "create": NONE, "update": NONE, "delete": NONE, "convert": NONE},
}


# Every routed lead action is exercised below; a new action must join the matrix.
COVERED_ACTIONS = {
    "list",
    "retrieve",
    "create",
    "partial_update",
    "destroy",
    "qualify",
    "disqualify",
    "convert",
    "bulk_update",
    "bulk_delete",
    "stats",
    "timeline",
}


def test_the_matrix_covers_every_lead_action():
    from crm.api.views import LeadViewSet
    from rbac.declarations import routed_actions

    routed = {a.action for a in routed_actions() if a.view is LeadViewSet}
    assert routed == COVERED_ACTIONS
    assert {code.rsplit(".", 1)[1] for code in LeadViewSet.action_permissions.values()} <= set(EXPECTED["owner"])


def _status(scope, *, mine: bool, ok: int) -> int:
    if scope is NONE:
        return 403
    if scope == OWN and not mine:
        return 404
    return ok


@pytest.fixture
def world(org_a, owner_a, member, in_tenant):
    def build(role):
        user, client = member(org_a, role)
        with in_tenant(org_a):
            mine = lead_create(actor=SYSTEM, name="Mine", owner_id=user.pk)
            other = lead_create(actor=SYSTEM, name="Other", owner_id=owner_a.pk)
        return client, mine, other

    return build


@pytest.mark.parametrize("role", list(EXPECTED))
def test_list_shows_what_the_scope_allows(world, role):
    client, mine, other = world(role)
    response = client.get("/api/v1/leads/")
    scope = EXPECTED[role]["view"]
    if scope is NONE:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert ids == ({mine.pk, other.pk} if scope == ALL else {mine.pk})


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_retrieve(world, role, whose):
    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    response = client.get(f"/api/v1/leads/{lead.pk}/")
    assert response.status_code == _status(EXPECTED[role]["view"], mine=whose == "mine", ok=200)


@pytest.mark.parametrize("role", list(EXPECTED))
def test_create(world, role):
    client, _mine, _other = world(role)
    response = client.post("/api/v1/leads/", {"name": "New lead"}, format="json")
    assert response.status_code == (403 if EXPECTED[role]["create"] is NONE else 201)
    if response.status_code == 403:
        assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_update(world, role, whose):
    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    response = client.patch(f"/api/v1/leads/{lead.pk}/", {"score": 42}, format="json")
    assert response.status_code == _status(EXPECTED[role]["update"], mine=whose == "mine", ok=200)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_delete(world, role, whose):
    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    response = client.delete(f"/api/v1/leads/{lead.pk}/")
    assert response.status_code == _status(EXPECTED[role]["delete"], mine=whose == "mine", ok=204)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_qualify_and_disqualify(world, role, whose):
    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    expected = _status(EXPECTED[role]["convert"], mine=whose == "mine", ok=200)
    assert client.post(f"/api/v1/leads/{lead.pk}/qualify/").status_code == expected
    response = client.post(f"/api/v1/leads/{lead.pk}/disqualify/", {"reason": "No budget"}, format="json")
    assert response.status_code == expected


def test_sales_rep_cannot_hand_a_lead_to_someone_else(world, owner_a):
    client, mine, _other = world("sales_rep")
    response = client.patch(f"/api/v1/leads/{mine.pk}/", {"owner": owner_a.pk}, format="json")
    assert response.status_code == 400
    assert field_error(response)["code"] == "out_of_scope"


def test_manager_can_reassign(world, owner_a):
    client, mine, _other = world("manager")
    response = client.patch(f"/api/v1/leads/{mine.pk}/", {"owner": owner_a.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["owner"]["id"] == owner_a.pk


@pytest.mark.parametrize("role", list(EXPECTED))
def test_stats_count_what_the_scope_allows(world, role):
    client, _mine, _other = world(role)
    response = client.get("/api/v1/leads/stats/")
    scope = EXPECTED[role]["view"]
    if scope is NONE:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    assert response.json()["total"] == (2 if scope == ALL else 1)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_timeline(world, role, whose):
    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    response = client.get(f"/api/v1/leads/{lead.pk}/timeline/")
    assert response.status_code == _status(EXPECTED[role]["view"], mine=whose == "mine", ok=200)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_convert(world, role, whose):
    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    response = client.post(f"/api/v1/leads/{lead.pk}/convert/", {}, format="json")
    assert response.status_code == _status(EXPECTED[role]["convert"], mine=whose == "mine", ok=200), response.content


def _bulk_status(scope, *, mine: bool) -> int:
    if scope is NONE:
        return 403
    if scope == OWN and not mine:
        return 400  # bulk_failed: the id is not_found, nothing changed
    return 200


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_bulk_update(world, role, whose, in_tenant, org_a):
    from crm.models import Lead

    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    response = client.post("/api/v1/leads/bulk-update/", {"ids": [lead.pk], "status": "contacted"}, format="json")
    expected = _bulk_status(EXPECTED[role]["update"], mine=whose == "mine")
    assert response.status_code == expected, response.content
    with in_tenant(org_a):
        assert (Lead.objects.get(pk=lead.pk).status == "contacted") == (expected == 200)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_bulk_delete(world, role, whose, in_tenant, org_a):
    from crm.models import Lead

    client, mine, other = world(role)
    lead = mine if whose == "mine" else other
    response = client.post("/api/v1/leads/bulk-delete/", {"ids": [lead.pk]}, format="json")
    expected = _bulk_status(EXPECTED[role]["delete"], mine=whose == "mine")
    assert response.status_code == expected, response.content
    if expected == 400:
        assert response.json()["errors"][0]["code"] == "not_found"
    with in_tenant(org_a):
        assert Lead.objects.filter(pk=lead.pk).exists() == (expected != 200)
