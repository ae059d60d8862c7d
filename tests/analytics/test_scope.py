"""Scope: a Sales Rep (``own`` scope) gets, for every figure, what the same report computes over his records only,
and nothing in any answer tells another owner's figures."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics import services
from analytics.measures import MEASURES
from analytics.models import Anomaly, ForecastSnapshot

pytestmark = pytest.mark.django_db

OTHERS_AMOUNT = "777331"  # an amount only other owners' deals have: it must never show up in the rep's answers


@pytest.fixture
def team(org_a, owner_a, member, history):
    rep, rep_client = member(org_a, "sales_rep")
    other, _other_client = member(org_a, "sales_rep")
    now = timezone.now()
    for index, person in enumerate([rep, other, owner_a]):
        amount = "1000" if person == rep else OTHERS_AMOUNT
        for days in (40, 25, 12, 3):
            history.deal(
                owner=person,
                amount=amount,
                created=now - timedelta(days=days + 10),
                path=[("Proposal", now - timedelta(days=days + 4))],
                won=now - timedelta(days=days) if days % 2 == 0 else None,
                lost=now - timedelta(days=days) if days % 2 else None,
            )
        history.deal(
            owner=person, amount=amount, created=now - timedelta(days=2 + index), expected_close_date=now.date()
        )
        lead = history.lead(owner=person, created=now - timedelta(days=5 + index), source="website")
        history.activity(owner=person, created=now - timedelta(days=4), lead=lead)
        history.activity(owner=person, created=now - timedelta(days=1), kind="task", due_at=now - timedelta(hours=3))
    return {"rep": rep, "rep_client": rep_client, "other": other}


REPORTS = [
    "/api/v1/analytics/pipeline/?period=last_30_days",
    "/api/v1/analytics/pipeline/?period=last_90_days",
    "/api/v1/analytics/leads/?period=last_30_days",
    "/api/v1/analytics/activity/?period=last_30_days",
    "/api/v1/analytics/forecast/?months=2",
]


def _body(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()


def _equal_to_his_records(team, as_owner_a, org_a, in_tenant):
    rep, client = team["rep"], team["rep_client"]
    for url in REPORTS:
        mine = _body(client, url)
        filtered = _body(as_owner_a, f"{url}&owner={rep.pk}")
        mine.pop("owner"), filtered.pop("owner")
        assert mine == filtered, url
        assert OTHERS_AMOUNT not in json.dumps(mine), url
    for name, measure in MEASURES.items():
        url = f"/api/v1/analytics/aggregate/?measure={name}&period=last_90_days"
        mine = _body(client, url)["results"]
        assert mine == _body(as_owner_a, f"{url}&owner={rep.pk}")["results"], name
        assert OTHERS_AMOUNT not in json.dumps(mine), name
        grouped = _body(client, f"{url}&group_by=owner")["results"]
        assert {row["group"]["owner"] for row in grouped} <= {rep.pk}, name
        if measure.time:
            series = _body(client, f"/api/v1/analytics/timeseries/?measure={name}&interval=week&period=last_90_days")
            expected = _body(
                as_owner_a,
                f"/api/v1/analytics/timeseries/?measure={name}&interval=week&period=last_90_days&owner={rep.pk}",
            )
            assert series == expected, name


def test_a_sales_reps_figures_are_those_of_his_records(team, as_owner_a, org_a, in_tenant):
    _equal_to_his_records(team, as_owner_a, org_a, in_tenant)
    activity = _body(team["rep_client"], "/api/v1/analytics/activity/?period=last_30_days")
    assert [row["owner"]["id"] for row in activity["by_owner"]] == [team["rep"].pk]
    assert activity["overdue_tasks"]["count"] == 1
    pipeline = _body(team["rep_client"], "/api/v1/analytics/pipeline/?period=last_90_days")
    assert pipeline["won_value"]["value"] == "2000.00"
    everyone = _body(as_owner_a, "/api/v1/analytics/pipeline/?period=last_90_days")
    assert Decimal(everyone["won_value"]["value"]) > Decimal(pipeline["won_value"]["value"])


def test_and_so_they_are_from_the_snapshots(team, as_owner_a, org_a, in_tenant):
    with in_tenant(org_a):
        services.snapshot_take()
    _equal_to_his_records(team, as_owner_a, org_a, in_tenant)


def test_anomalies_and_forecast_accuracy_of_others_stay_hidden(team, org_a, owner_a, in_tenant, as_owner_a):
    rep, other = team["rep"], team["other"]
    day = timezone.now().date() - timedelta(days=1)
    month = date(day.year, day.month, 1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    with in_tenant(org_a):
        for owner in (None, rep, other):
            Anomaly.objects.create(
                day=day,
                metric="won_value",
                owner=owner,
                value=9,
                expected=1,
                lower=0,
                upper=2,
                direction="above",
                score=5,
            )
            ForecastSnapshot.objects.create(
                week=last_month - timedelta(days=last_month.weekday()),
                month=last_month,
                owner=owner,
                expected=100,
                low_80=50,
                high_80=150,
                low_95=20,
                high_95=200,
            )
    mine = _body(team["rep_client"], "/api/v1/analytics/anomalies/")["results"]
    assert [row["owner"] for row in mine] == [rep.pk]
    assert len(_body(as_owner_a, "/api/v1/analytics/anomalies/")["results"]) == 3
    accuracy = _body(team["rep_client"], "/api/v1/analytics/forecast/accuracy/")["results"]
    assert [row["owner"]["id"] for row in accuracy] == [rep.pk]
    assert {
        row["owner"]["id"] if row["owner"] else None
        for row in _body(as_owner_a, "/api/v1/analytics/forecast/accuracy/")["results"]
    } == {None, rep.pk, other.pk}
    snapshots = _body(team["rep_client"], "/api/v1/analytics/forecast/snapshots/")["results"]
    assert {row["owner"] for row in snapshots} == {rep.pk}


def test_next_actions_are_the_callers_own_deals(team, as_owner_a):
    rep = team["rep"]
    mine = _body(team["rep_client"], "/api/v1/analytics/next-actions/")["results"]
    assert mine
    assert {item["deal"]["owner"] for item in mine} == {rep.pk}
    others_deal = _body(as_owner_a, "/api/v1/analytics/next-actions/")["results"][0]["deal"]["id"]
    response = team["rep_client"].get(f"/api/v1/analytics/deals/{others_deal}/next-actions/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_role_without_deal_scope_sees_no_deal_figures(org_a, team, member):
    """analytics.report.view opens the reports, never more records: Support (no report permission) is refused, a
    custom role with the report permission but no record permission gets zeros."""
    from rbac.models import Role
    from rbac.services import membership_create

    from ..conftest import client_for
    from ..factories import make_user

    _support, support = member(org_a, "support")
    response = support.get("/api/v1/analytics/pipeline/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    role = Role.objects.create(organization=org_a, key="reader", name="Reader", grants={"analytics.report.view": "all"})
    user = make_user()
    membership_create(user=user, organization=org_a, role=role)
    body = _body(client_for(user, org_a), "/api/v1/analytics/pipeline/?period=last_90_days")
    assert body["deals_won"]["value"] == 0
    assert body["open_deals"]["value"] == 0
    assert _body(client_for(user, org_a), "/api/v1/analytics/leads/")["created"]["value"] == 0
