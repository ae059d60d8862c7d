"""Own scope: a Sales Rep sees, moves and closes their own deals only, on every endpoint that shows deals.

Expectations are written out by hand (not derived from rbac/roles.py).
"""

import pytest

from pipelines.models import Deal

from ..problems import field_error

pytestmark = pytest.mark.django_db

# role: (view, update, move_stage, close, delete, create) scope
EXPECTED = {
    "owner": ("all", "all", "all", "all", "all", "all"),
    "manager": ("all", "all", "all", "all", "all", "all"),
    "sales_rep": ("own", "own", "own", "own", None, "all"),
    "support": ("all", None, None, None, None, None),
    "viewer": ("all", None, None, None, None, None),
}


def _status(scope, *, mine: bool, ok: int) -> int:
    if scope is None:
        return 403
    if scope == "own" and not mine:
        return 404
    return ok


@pytest.fixture
def world(org_a, owner_a, member, make_deal, stages_a):
    def build(role):
        user, client = member(org_a, role)
        mine = make_deal(org_a, owner=user, amount="300", stage=stages_a["Proposal"], expected_close_date="2026-02-10")
        other = make_deal(
            org_a, owner=owner_a, amount="700", stage=stages_a["Proposal"], expected_close_date="2026-02-20"
        )
        return user, client, mine, other

    return build


@pytest.mark.parametrize("role", list(EXPECTED))
def test_list_detail_and_board(world, role, pipeline_a, stages_a):
    _user, client, mine, other = world(role)
    view = EXPECTED[role][0]
    expected_ids = {mine.pk, other.pk} if view == "all" else {mine.pk}
    assert {d["id"] for d in client.get("/api/v1/deals/").json()["results"]} == expected_ids
    assert client.get(f"/api/v1/deals/{mine.pk}/").status_code == 200
    assert client.get(f"/api/v1/deals/{other.pk}/").status_code == _status(view, mine=False, ok=200)
    assert client.get(f"/api/v1/deals/{other.pk}/timeline/").status_code == _status(view, mine=False, ok=200)

    board = client.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/").json()
    proposal = next(c for c in board["stages"] if c["stage"]["name"] == "Proposal")
    assert {d["id"] for d in proposal["deals"]} == expected_ids
    assert proposal["count"] == len(expected_ids)
    assert proposal["amount"] == ("1000.00" if view == "all" else "300.00")
    stage_page = client.get(f"/api/v1/stages/{stages_a['Proposal'].pk}/deals/").json()
    assert {d["id"] for d in stage_page["results"]} == expected_ids

    forecast = client.get(f"/api/v1/pipelines/{pipeline_a.pk}/forecast/").json()
    assert forecast["totals"]["open_amount"] == ("1000.00" if view == "all" else "300.00")
    stats = client.get(f"/api/v1/pipelines/{pipeline_a.pk}/stats/").json()
    assert stats["deals"]["open"] == len(expected_ids)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("whose", ["mine", "other"])
def test_move_and_close(world, role, whose, stages_a, org_a, in_tenant):
    _user, client, mine, other = world(role)
    deal = mine if whose == "mine" else other
    _view, update, move, close, delete, _create = EXPECTED[role]
    is_mine = whose == "mine"

    response = client.patch(f"/api/v1/deals/{deal.pk}/", {"title": "Renamed"})
    assert response.status_code == _status(update, mine=is_mine, ok=200)
    response = client.post(f"/api/v1/deals/{deal.pk}/move-stage/", {"stage": stages_a["Negotiation"].pk})
    assert response.status_code == _status(move, mine=is_mine, ok=200)
    response = client.post(f"/api/v1/deals/{deal.pk}/mark-won/")
    assert response.status_code == _status(close, mine=is_mine, ok=200)
    response = client.post(f"/api/v1/deals/{deal.pk}/reopen/")
    assert response.status_code == _status(close, mine=is_mine, ok=200)
    response = client.post(f"/api/v1/deals/{deal.pk}/mark-lost/", {"reason": "No budget"})
    assert response.status_code == _status(close, mine=is_mine, ok=200)
    response = client.delete(f"/api/v1/deals/{deal.pk}/")
    assert response.status_code == _status(delete, mine=is_mine, ok=204)

    with in_tenant(org_a):
        still = Deal.objects.filter(pk=deal.pk).first()
    if _status(move, mine=is_mine, ok=200) != 200:
        assert (still.stage_id, still.status) == (stages_a["Proposal"].pk, "open")


@pytest.mark.parametrize("role", list(EXPECTED))
def test_create(world, role, pipeline_a):
    _user, client, _mine, _other = world(role)
    response = client.post("/api/v1/deals/", {"title": "New"})
    assert response.status_code == (403 if EXPECTED[role][5] is None else 201)


def test_sales_rep_cannot_hand_a_deal_to_someone_else(world, owner_a):
    _user, client, mine, _other = world("sales_rep")
    response = client.patch(f"/api/v1/deals/{mine.pk}/", {"owner": owner_a.pk})
    assert field_error(response)["code"] == "out_of_scope"
    response = client.post("/api/v1/deals/", {"title": "For the boss", "owner": owner_a.pk})
    assert field_error(response)["code"] == "out_of_scope"


def test_sales_rep_creates_deals_for_themselves(world):
    user, client, _mine, _other = world("sales_rep")
    body = client.post("/api/v1/deals/", {"title": "Mine"}).json()
    assert body["owner"]["id"] == user.pk
