"""Forecast and statistics, checked against values computed by hand."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing.services import subscription_change_plan
from pipelines.models import Deal

pytestmark = pytest.mark.django_db


@pytest.fixture
def forecast_world(as_owner_a, pipeline_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    s = stages_a
    make_deal(org_a, owner=owner_a, amount="1000", stage=s["Qualification"], expected_close_date="2026-01-15")  # 10 %
    make_deal(org_a, owner=owner_a, amount="2000", stage=s["Proposal"], expected_close_date="2026-01-31")  # 50 %
    make_deal(org_a, owner=owner_a, amount="400", stage=s["Negotiation"], expected_close_date="2026-03-01")  # 75 %
    make_deal(org_a, owner=owner_a, amount="100", stage=s["Needs analysis"])  # 25 %, no date
    won = {}
    for amount, won_at in [("500", "2026-02-05"), ("250", "2026-02-28T23:30:00"), ("300", "2026-03-10")]:
        deal = make_deal(org_a, owner=owner_a, amount=amount, expected_close_date="2025-12-01")
        as_owner_a.post(f"/api/v1/deals/{deal.pk}/mark-won/")
        won[deal.pk] = datetime.fromisoformat(won_at).replace(tzinfo=UTC)
    lost = make_deal(org_a, owner=owner_a, amount="999", expected_close_date="2026-01-10")
    as_owner_a.post(f"/api/v1/deals/{lost.pk}/mark-lost/", {"reason": "Price"})
    with in_tenant(org_a):
        for pk, at in won.items():
            Deal.objects.filter(pk=pk).update(won_at=at)


def test_forecast_by_month(as_owner_a, pipeline_a, forecast_world):
    response = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/forecast/")
    assert response.status_code == 200
    body = response.json()
    assert body["months"] == [
        {
            "month": "2026-01",
            "open_count": 2,
            "open_amount": "3000.00",
            "weighted_amount": "1100.00",  # 1000 × 10 % + 2000 × 50 %
            "won_count": 0,
            "won_amount": "0.00",
        },
        {
            "month": "2026-02",
            "open_count": 0,
            "open_amount": "0.00",
            "weighted_amount": "0.00",
            "won_count": 2,
            "won_amount": "750.00",
        },
        {
            "month": "2026-03",
            "open_count": 1,
            "open_amount": "400.00",
            "weighted_amount": "300.00",
            "won_count": 1,
            "won_amount": "300.00",
        },
    ]
    assert body["unscheduled"] == {"open_count": 1, "open_amount": "100.00", "weighted_amount": "25.00"}
    assert body["totals"] == {"open_amount": "3500.00", "weighted_amount": "1425.00", "won_amount": "1050.00"}


def test_forecast_between_months(as_owner_a, pipeline_a, forecast_world):
    body = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/forecast/?start=2026-02&end=2026-02").json()
    assert [(m["month"], m["open_amount"], m["won_amount"]) for m in body["months"]] == [("2026-02", "0.00", "750.00")]
    assert body["totals"] == {"open_amount": "100.00", "weighted_amount": "25.00", "won_amount": "750.00"}
    assert as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/forecast/?start=2026-2").status_code == 400


def test_forecast_needs_the_feature(as_owner_a, pipeline_a, org_a):
    subscription_change_plan(organization=org_a, plan_code="free", actor=None)
    response = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/forecast/")
    assert (response.status_code, response.json()["feature"]) == (403, "analytics.forecast")
    assert as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/stats/").status_code == 200


def test_stats(as_owner_a, pipeline_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    s = stages_a

    def walk(deal, *names, lost=None):
        for name in names:
            body = {"stage": s[name].pk, **({"reason": lost} if lost else {})}
            response = as_owner_a.post(f"/api/v1/deals/{deal.pk}/move-stage/", body)
            assert response.status_code == 200, response.json()

    d1 = make_deal(org_a, owner=owner_a, amount="1000")
    walk(d1, "Needs analysis", "Proposal", "Won")  # skips Negotiation
    d2 = make_deal(org_a, owner=owner_a, amount="500")
    walk(d2, "Needs analysis", "Lost", lost="No budget")
    d3 = make_deal(org_a, owner=owner_a, amount="50")
    walk(d3, "Proposal")
    d4 = make_deal(org_a, owner=owner_a, amount="70")
    d5 = make_deal(org_a, owner=owner_a, amount="3000")
    walk(d5, "Needs analysis", "Proposal", "Negotiation", "Won")
    now = timezone.now()
    with in_tenant(org_a):
        Deal.objects.filter(pk=d1.pk).update(created_at=now - timedelta(days=40), won_at=now - timedelta(days=30))
        Deal.objects.filter(pk=d5.pk).update(created_at=now - timedelta(days=20), won_at=now)
        Deal.objects.filter(pk=d3.pk).update(stage_entered_at=now - timedelta(days=30, hours=1))  # Proposal: 21 days
        Deal.objects.filter(pk=d4.pk).update(stage_entered_at=now - timedelta(days=10))  # Qualification: 14 days

    body = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/stats/").json()
    assert body["deals"] == {"open": 2, "won": 2, "lost": 1}
    assert body["win_rate"] == 0.6667
    assert (body["won_amount"], body["average_won_amount"]) == ("4000.00", "2000.00")
    assert body["average_sales_cycle_days"] == 15.0
    assert [
        (c["from_stage"]["name"], c["to_stage"]["name"], c["reached_from"], c["reached_to"], c["rate"])
        for c in body["conversion"]
    ] == [
        ("Qualification", "Needs analysis", 5, 4, 0.8),
        ("Needs analysis", "Proposal", 4, 3, 0.75),
        ("Proposal", "Negotiation", 3, 2, 0.6667),
        ("Negotiation", "Won", 2, 2, 1.0),
    ]
    assert body["rotting"]["count"] == 1
    assert body["rotting"]["by_stage"] == [{"stage": {"id": s["Proposal"].pk, "name": "Proposal"}, "count": 1}]
    assert [(d["id"], d["days_in_stage"], d["rotting_days"]) for d in body["rotting"]["deals"]] == [(d3.pk, 30, 21)]
    detail = as_owner_a.get(f"/api/v1/deals/{d3.pk}/").json()
    assert detail["is_rotting"] is True
    assert as_owner_a.get(f"/api/v1/deals/{d4.pk}/").json()["is_rotting"] is False


def test_stats_of_an_empty_pipeline(as_owner_a, pipeline_a):
    body = as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/stats/").json()
    assert (body["win_rate"], body["average_won_amount"], body["average_sales_cycle_days"]) == (None, None, None)
    assert all(c["rate"] is None for c in body["conversion"])
