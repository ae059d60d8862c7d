"""Figures against fixtures computed by hand, read from the records (live) and again from the daily snapshots."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from analytics import cache, selectors, services
from analytics.models import DailyMetric
from analytics.periods import Period
from crm import services as crm
from pipelines.models import Deal
from rbac.access import access_for
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db

UTC_ZONE = ZoneInfo("UTC")
JUNE = Period(date(2026, 6, 1), date(2026, 6, 30), UTC_ZONE, unit="month")


def at(day: int, hour: int = 10, month: int = 6) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def june(history, owner_a):
    """Deals of June 2026 (hand-computed below) and one of May."""
    return {
        # won: 10 days; 2 days in Qualification, 3 in Needs analysis, 5 in Proposal
        "d1": history.deal(
            owner=owner_a,
            amount="1000",
            created=at(1),
            path=[("Needs analysis", at(3)), ("Proposal", at(6))],
            won=at(11),
        ),
        # lost after reaching Needs analysis: 2 days in Qualification, 8 in Needs analysis
        "d2": history.deal(owner=owner_a, amount="500", created=at(2), path=[("Needs analysis", at(4))], lost=at(12)),
        # lost from Qualification after 1 day
        "d3": history.deal(owner=owner_a, amount="200", created=at(5), lost=at(6)),
        # May: won after 10 days
        "d4": history.deal(owner=owner_a, amount="300", created=at(10, month=5), won=at(20, month=5)),
        # open: 5 days in Qualification, then Proposal
        "d5": history.deal(owner=owner_a, amount="2000", created=at(20), path=[("Proposal", at(25))]),
        # open in Qualification
        "d6": history.deal(owner=owner_a, amount="400", created=at(15)),
    }


def _report(org, owner, in_tenant, **kwargs):
    access = access_for(user=owner, organization=org)
    with in_tenant(org):
        return selectors.pipeline_report(actor=access, period=JUNE, **kwargs)


def _check_june(report):
    assert report["deals_won"] == {"value": 1, "previous": 1, "change": 0.0}
    assert report["deals_lost"]["value"] == 2
    assert report["won_value"]["value"] == Decimal("1000.00")
    assert report["lost_value"]["value"] == Decimal("700.00")
    assert report["win_rate"] == {"value": 0.3333, "previous": 1.0, "change": -0.6667}
    assert report["win_rate_by_value"]["value"] == round(1000 / 1700, 4)
    assert report["average_deal_size"]["value"] == Decimal("1000.00")
    assert report["average_deal_size"]["previous"] == Decimal("300.00")
    assert report["sales_cycle_days"] == {"value": 10.0, "previous": 10.0, "change": 0.0}
    steps = {step["stage"]["name"]: step for step in report["funnel"]["stages"]}
    assert report["funnel"]["won"] == 1
    assert [steps[name]["reached"] for name in ("Qualification", "Needs analysis", "Proposal", "Negotiation")] == [
        3,
        2,
        1,
        1,
    ]
    assert steps["Qualification"]["advanced"] == 2
    assert steps["Qualification"]["conversion_rate"] == 0.6667
    assert steps["Qualification"]["drop_off"] == 1
    assert steps["Needs analysis"]["conversion_rate"] == 0.5
    assert steps["Negotiation"]["advanced"] == 1  # won after the last open stage
    # Exits in June: Qualification after 2, 2, 1 and 5 days; Needs analysis after 3 and 8; Proposal after 5.
    assert steps["Qualification"]["median_days_in_stage"] == 2.0
    assert steps["Needs analysis"]["median_days_in_stage"] == 5.5
    assert steps["Proposal"]["median_days_in_stage"] == 5.0
    assert steps["Negotiation"]["median_days_in_stage"] is None


def test_pipeline_figures_from_the_records(org_a, owner_a, in_tenant, june):
    report = _report(org_a, owner_a, in_tenant)
    _check_june(report)
    # June is over and no snapshot was taken at its end: the open pipeline then is not known, not 0.
    assert report["open_deals"]["value"] is None
    assert report["pipeline_velocity"]["value"] is None


def test_the_same_figures_from_the_snapshots(org_a, owner_a, in_tenant, june):
    with in_tenant(org_a):
        taken = services.snapshot_take()
    assert taken.days[0] == date(2026, 5, 10)
    _check_june(_report(org_a, owner_a, in_tenant))
    # History is read from the snapshots, not from the records: a change that records no event (so nothing would
    # ever tell analytics) does not move June.
    with in_tenant(org_a):
        Deal.objects.filter(pk=june["d1"].pk).update(amount=Decimal("9999"))
        cache.invalidate()
        assert DailyMetric.objects.filter(metric="deals.won", day=date(2026, 6, 11)).exists()
    assert _report(org_a, owner_a, in_tenant)["won_value"]["value"] == Decimal("1000.00")


def test_open_and_weighted_value_now(org_a, owner_a, as_owner_a, june):
    body = as_owner_a.get("/api/v1/analytics/pipeline/?period=last_7_days").json()
    assert body["open_deals"]["value"] == 2
    assert body["open_value"]["value"] == "2400.00"
    assert body["weighted_value"]["value"] == "1040.00"  # 2000 × 50% (Proposal) + 400 × 10% (Qualification)


def test_velocity(org_a, owner_a, as_owner_a, history):
    now = timezone.now()
    history.deal(owner=owner_a, amount="1000", created=now - timedelta(days=20), won=now - timedelta(days=10))
    history.deal(owner=owner_a, amount="500", created=now - timedelta(days=8), lost=now - timedelta(days=3))
    history.deal(owner=owner_a, amount="100", created=now - timedelta(days=2))
    body = as_owner_a.get("/api/v1/analytics/pipeline/?period=last_30_days").json()
    # 1 open deal × win rate 1/2 × average deal size 1000 ÷ 10 days of sales cycle = 50 a day
    assert body["pipeline_velocity"]["value"] == "50.00"


def test_lead_figures(org_a, owner_a, in_tenant, history, stages_a):
    l1 = history.lead(owner=owner_a, created=at(1), source="website")
    l2 = history.lead(owner=owner_a, created=at(2), source="referral", email="l2@lead.test")
    history.lead(owner=owner_a, created=at(3), source="event")
    l4 = history.lead(owner=owner_a, created=at(4), source="website")
    history.lead(owner=owner_a, created=at(20, month=5), source="website")
    history.activity(owner=owner_a, created=at(1, 14), lead=l1)
    history.activity(owner=owner_a, created=at(2, 16), lead=l2)
    history.activity(owner=owner_a, created=at(4, 20), lead=l4)
    history.activity(owner=owner_a, created=at(5, 20), lead=l4)  # not the first
    with in_tenant(org_a):
        crm.lead_qualify(lead=l1, actor=SYSTEM)
        crm.lead_disqualify(lead=l4, actor=SYSTEM, reason="No budget")
        converted = crm.lead_convert(lead=l2, actor=SYSTEM, create_deal=True)
        Deal.objects.filter(pk=converted.deal.pk).update(amount=Decimal("700"))
        deal = Deal.objects.get(pk=converted.deal.pk)
    history.live(deal, created=at(2, 12), won=at(20))

    access = access_for(user=owner_a, organization=org_a)
    with in_tenant(org_a):
        report = selectors.leads_report(actor=access, period=JUNE)
    assert report["created"] == {"value": 4, "previous": 1, "change": 3.0}
    by_source = {row["source"]: row["count"] for row in report["by_source"]}
    assert by_source == {**dict.fromkeys(by_source, 0), "website": 2, "referral": 1, "event": 1}
    assert "none" in by_source
    statuses = {row["status"]: row["count"] for row in report["by_status"]}
    assert statuses == {"new": 1, "contacted": 0, "qualified": 1, "unqualified": 1, "converted": 1}
    assert report["qualification_rate"]["value"] == 0.5  # qualified or converted: 2 of 4
    assert report["conversion_rate"]["value"] == 0.25
    # first activities after 4, 6 and 10 hours; one lead untouched
    assert report["median_hours_to_first_activity"]["value"] == 6.0
    assert report["average_hours_to_first_activity"]["value"] == round(20 / 3, 2)
    assert report["untouched"]["value"] == 1
    attribution = {row["source"]: row for row in report["attribution"]}
    assert attribution["referral"]["deals_won"] == 1
    assert attribution["referral"]["won_value"] == Decimal("700.00")
    assert attribution["website"]["won_value"] == Decimal("0.00")


def test_activity_figures(org_a, owner_a, member, in_tenant, history):
    rep, _client = member(org_a, "sales_rep")
    history.activity(owner=owner_a, created=at(3), kind="call")
    history.activity(owner=owner_a, created=at(4), kind="call")
    history.activity(owner=owner_a, created=at(5), kind="note")
    history.activity(owner=rep, created=at(6), kind="meeting")
    history.activity(owner=owner_a, created=at(6, month=5), kind="call")
    now = timezone.now()
    with_task = history.deal(owner=owner_a, created=now - timedelta(days=3))
    history.deal(owner=owner_a, created=now - timedelta(days=3))  # no next step
    late = history.deal(owner=rep, created=now - timedelta(days=3))  # only an overdue task: no next step either
    history.activity(owner=owner_a, created=now, kind="task", deal=with_task, due_at=now + timedelta(days=2))
    history.activity(owner=rep, created=now, kind="task", deal=late, due_at=now - timedelta(days=1))

    access = access_for(user=owner_a, organization=org_a)
    with in_tenant(org_a):
        report = selectors.activity_report(actor=access, period=JUNE)
    assert report["total"] == {"value": 4, "previous": 1, "change": 3.0}
    kinds = {row["kind"]: (row["count"], row["previous"]) for row in report["by_kind"]}
    assert kinds["call"] == (2, 1)
    assert kinds["note"] == (1, 0)
    assert kinds["meeting"] == (1, 0)
    owners = {row["owner"]["id"]: row for row in report["by_owner"]}
    assert owners[owner_a.pk]["total"] == 3
    assert owners[owner_a.pk]["by_kind"]["call"] == 2
    assert owners[rep.pk]["by_kind"] == {"note": 0, "call": 0, "email": 0, "meeting": 1, "task": 0}
    assert report["overdue_tasks"]["count"] == 1
    assert report["overdue_tasks"]["by_owner"] == [{"owner": owners[rep.pk]["owner"], "count": 1}]
    assert report["deals_without_next_step"]["count"] == 2
    assert report["deals_without_next_step"]["open_deals"] == 3


def test_an_empty_organization_gives_zeros(org_a, as_owner_a):
    pipeline = as_owner_a.get("/api/v1/analytics/pipeline/").json()
    assert pipeline["deals_won"] == {"value": 0, "previous": 0, "change": None}
    assert pipeline["won_value"]["value"] == "0.00"
    assert pipeline["open_deals"]["value"] == 0
    assert pipeline["open_value"]["value"] == "0.00"
    assert pipeline["win_rate"]["value"] is None  # nothing closed: no rate, rather than a misleading 0%
    funnel = pipeline["funnel"]  # the default pipeline every new organization starts with, nothing in it
    assert funnel["won"] == 0
    assert funnel["stages"]
    assert all(row["reached"] == 0 and row["conversion_rate"] is None for row in funnel["stages"])
    leads = as_owner_a.get("/api/v1/analytics/leads/").json()
    assert leads["created"]["value"] == 0
    assert all(row["count"] == 0 for row in leads["by_status"])
    activity = as_owner_a.get("/api/v1/analytics/activity/").json()
    assert activity["total"]["value"] == 0
    assert activity["overdue_tasks"] == {"count": 0, "by_owner": []}
    series = as_owner_a.get("/api/v1/analytics/timeseries/?measure=won_value&interval=week&period=last_30_days").json()
    assert series["count"] >= 5
    assert {point["value"] for point in series["results"]} == {"0.00"}
    forecast = as_owner_a.get("/api/v1/analytics/forecast/").json()
    assert [month["expected"] for month in forecast["months"]] == ["0.00", "0.00", "0.00"]
    assert as_owner_a.get("/api/v1/analytics/next-actions/").json()["count"] == 0
    assert as_owner_a.get("/api/v1/analytics/forecast/accuracy/").json()["count"] == 0
