"""The board: per-stage numbers, first page per stage, further pages, and a query count that does not grow."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pipelines import services
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db


def _column(board, name):
    return next(column for column in board["stages"] if column["stage"]["name"] == name)


def test_numbers_per_stage(as_owner_a, pipeline_a, stages_a, org_a, owner_a, make_deal):
    for amount in ("100.00", "250.50"):
        make_deal(org_a, owner=owner_a, amount=amount, stage=stages_a["Qualification"])  # 10 %
    for amount in ("1000.00", "333.33", "0.01"):
        make_deal(org_a, owner=owner_a, amount=amount, stage=stages_a["Negotiation"])  # 75 %
    won = make_deal(org_a, owner=owner_a, amount="999.00")
    as_owner_a.post(f"/api/v1/deals/{won.pk}/mark-won/")

    response = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/")
    assert response.status_code == 200
    board = response.json()
    assert [c["stage"]["name"] for c in board["stages"]] == [
        "Qualification",
        "Needs analysis",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]
    numbers = {c["stage"]["name"]: (c["count"], c["amount"], c["weighted_amount"]) for c in board["stages"]}
    assert numbers == {
        "Qualification": (2, "350.50", "35.05"),
        "Needs analysis": (0, "0.00", "0.00"),
        "Proposal": (0, "0.00", "0.00"),
        "Negotiation": (3, "1333.34", "1000.01"),  # 1333.34 × 0.75 = 1000.005 → 1000.01
        "Won": (1, "999.00", "999.00"),
        "Lost": (0, "0.00", "0.00"),
    }
    assert [d["amount"] for d in _column(board, "Negotiation")["deals"]] == [
        "0.01",
        "333.33",
        "1000.00",
    ]  # newest first


def test_first_page_per_stage_and_further_pages(as_owner_a, pipeline_a, stages_a, org_a, owner_a, make_deal):
    deals = [make_deal(org_a, owner=owner_a, stage=stages_a["Proposal"]) for _ in range(7)]
    newest_first = [d.pk for d in reversed(deals)]
    make_deal(org_a, owner=owner_a, stage=stages_a["Qualification"])

    board = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/?per_stage=3").json()
    proposal = _column(board, "Proposal")
    assert (proposal["count"], [d["id"] for d in proposal["deals"]]) == (7, newest_first[:3])
    assert proposal["next"].endswith(f"/api/v1/stages/{stages_a['Proposal'].pk}/deals/?page=2&page_size=3")
    assert _column(board, "Qualification")["next"] is None

    page2 = as_owner_a.get(proposal["next"]).json()
    assert (page2["count"], [d["id"] for d in page2["results"]]) == (7, newest_first[3:6])
    page3 = as_owner_a.get(page2["next"]).json()
    assert ([d["id"] for d in page3["results"]], page3["next"]) == (newest_first[6:], None)
    assert set(page3["results"][0]) == set(proposal["deals"][0])  # the same cards as on the board


def test_per_stage_is_capped(as_owner_a, pipeline_a, stages_a):
    assert as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/?per_stage=101").status_code == 400
    assert as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/?per_stage=0").status_code == 400


def test_owner_filter(as_owner_a, pipeline_a, stages_a, org_a, owner_a, member, make_deal):
    rep, _client = member(org_a, "sales_rep")
    make_deal(org_a, owner=rep, amount="10", stage=stages_a["Proposal"])
    make_deal(org_a, owner=owner_a, amount="20", stage=stages_a["Proposal"])
    board = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/?owner={rep.pk}").json()
    assert (_column(board, "Proposal")["count"], _column(board, "Proposal")["amount"]) == (1, "10.00")


def _queries(client, url) -> int:
    client.get(url)  # warm: authorization cache, search path
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def test_board_and_list_cost_a_constant_number_of_queries(
    as_owner_a, pipeline_a, stages_a, org_a, owner_a, member, make_deal, in_tenant
):
    from crm.models import Company, Contact

    board_url = f"/api/v1/pipelines/{pipeline_a.pk}/board/"
    list_url = "/api/v1/deals/?page_size=100"
    stage_url = f"/api/v1/stages/{stages_a['Proposal'].pk}/deals/"
    make_deal(org_a, owner=owner_a, stage=stages_a["Proposal"], tags=["a"])
    small = [_queries(as_owner_a, url) for url in (board_url, list_url, stage_url)]

    rep, _client = member(org_a, "sales_rep")
    with in_tenant(org_a):
        company = Company.objects.create(name="Acme")
        contact = Contact.objects.create(first_name="Ada", company=company)
        for index in range(4):
            services.stage_create(pipeline=pipeline_a, actor=SYSTEM, name=f"Extra {index}", probability=30)
    for index in range(60):
        stage = list(stages_a.values())[index % 4]
        make_deal(
            org_a,
            owner=rep if index % 2 else owner_a,
            stage=stage,
            tags=[f"t{index % 5}", "x"],
            company=company,
            contact=contact,
        )
    large = [_queries(as_owner_a, url) for url in (board_url, list_url, stage_url)]
    assert large == small
    # The board: the pipeline, and one query that reads its stages, counts, sums and picks the cards per stage and
    # loads them with their tags (the signed-in user comes from the authentication cache).
    assert small == [2, 3, 3]


def test_the_boards_cards_match_the_documented_serializer_in_the_current_time_zone(
    as_owner_a, pipeline_a, org_a, owner_a, stages_a, make_deal, in_tenant, settings
):
    """The board reads its cards with psycopg's own timestamp loader, not Django's: the same instants, shown the
    same way, in UTC and in another zone."""
    from django.utils import timezone

    from pipelines.api.serializers import DealCardOutput
    from pipelines.models import Deal
    from pipelines.selectors import deals

    make_deal(org_a, owner=owner_a, amount="12.5", tags=["b", "a"], stage=stages_a["Proposal"])
    make_deal(org_a, owner=owner_a, amount="7", stage=stages_a["Proposal"])
    with in_tenant(org_a):
        Deal.objects.filter(amount=7).update(stage_entered_at="2020-06-30T23:59:59.999999Z")
    for zone in ("UTC", "Pacific/Auckland"):
        settings.TIME_ZONE = zone
        with timezone.override(zone):
            board = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/").json()
            with in_tenant(org_a):
                documented = DealCardOutput(list(deals().order_by("-created_at", "-pk")), many=True).data
        assert _column(board, "Proposal")["deals"] == [dict(card) for card in documented]
    moved = next(card for card in _column(board, "Proposal")["deals"] if card["amount"] == "7.00")
    assert moved["stage_entered_at"] == "2020-07-01T11:59:59.999999+12:00"


def test_fast_cards_match_the_documented_serializer(org_a, owner_a, stages_a, make_deal, in_tenant):
    from crm.models import Company, Contact
    from pipelines.api.serializers import DealCardOutput, deal_cards
    from pipelines.selectors import card_rows, deals

    with in_tenant(org_a):
        company = Company.objects.create(name="Acme")
        contact = Contact.objects.create(first_name="Ada", last_name="Lovelace")
    make_deal(org_a, owner=owner_a, amount="12.5", tags=["b", "a"], company=company, expected_close_date="2026-04-01")
    make_deal(org_a, owner=None, amount="0", contact=contact, stage=stages_a["Proposal"])
    with in_tenant(org_a):
        from pipelines.models import Deal

        Deal.objects.filter(stage=stages_a["Proposal"]).update(stage_entered_at="2020-01-01T10:00:00.123456Z")
        instances = list(deals().order_by("pk"))
        fast = deal_cards(card_rows(Deal.objects.order_by("pk")))
        documented = DealCardOutput(instances, many=True).data
    assert fast == [dict(row) for row in documented]
    assert fast[1]["is_rotting"] is True
    assert (fast[0]["amount"], fast[0]["tags"], fast[0]["owner"]["id"]) == ("12.50", ["a", "b"], owner_a.pk)
