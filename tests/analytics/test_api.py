"""The analytics API's edge: who may call what (with the codes), what input is refused, and the list shape."""

from __future__ import annotations

import pytest

from billing.models import Feature, Override
from config.decision_cache import invalidate_decisions
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db

REPORTS = [
    "/api/v1/analytics/pipeline/",
    "/api/v1/analytics/leads/",
    "/api/v1/analytics/activity/",
    "/api/v1/analytics/aggregate/?measure=deals_won",
    "/api/v1/analytics/timeseries/?measure=deals_won",
    "/api/v1/analytics/measures/",
]
INSIGHTS = [
    "/api/v1/analytics/forecast/",
    "/api/v1/analytics/forecast/accuracy/",
    "/api/v1/analytics/forecast/snapshots/",
    "/api/v1/analytics/anomalies/",
    "/api/v1/analytics/next-actions/",
    "/api/v1/analytics/deals/1/next-actions/",
]


@pytest.mark.parametrize("role", ["owner", "admin", "manager", "sales_rep", "viewer"])
@pytest.mark.parametrize("url", REPORTS)
def test_roles_with_the_report_permission_read_reports(org_a, member, role, url):
    _user, client = member(org_a, role)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", REPORTS + INSIGHTS)
def test_support_has_no_report_permission(org_a, member, url):
    _user, client = member(org_a, "support")
    response = client.get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert response.json()["permission"] == "analytics.report.view"


@pytest.mark.parametrize("url", INSIGHTS)
def test_forecasting_anomalies_and_next_actions_need_the_plan_feature(org_a, as_owner_a, url):
    Override.objects.create(organization=org_a, feature=Feature.objects.get(code="analytics.forecast"), enabled=False)
    invalidate_decisions(organization_id=org_a.pk)
    response = as_owner_a.get(url)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "feature_not_in_plan"
    assert body["feature"] == "analytics.forecast"
    assert body["plan"]["code"] == "pro"


@pytest.mark.parametrize("url", REPORTS)
def test_reports_are_in_every_plan(org_a, as_owner_a, url):
    Override.objects.create(organization=org_a, feature=Feature.objects.get(code="analytics.forecast"), enabled=False)
    invalidate_decisions(organization_id=org_a.pk)
    assert as_owner_a.get(url).status_code == 200


def test_a_non_member_learns_nothing(owner_b, org_a):
    from ..conftest import client_for

    response = client_for(owner_b, org_a).get("/api/v1/analytics/pipeline/")
    assert response.status_code == 404
    assert response.json()["code"] == "organization_not_found"


def _error(response):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    return body


def test_an_unknown_measure_lists_the_allowed_ones(as_owner_a):
    body = _error(as_owner_a.get("/api/v1/analytics/aggregate/?measure=revenue"))
    assert body["errors"] == [{"field": "measure", "code": "unknown_measure", "detail": "Unknown measure 'revenue'."}]
    assert "won_value" in body["allowed"]
    assert "win_rate" in body["allowed"]
    body = _error(as_owner_a.get("/api/v1/analytics/timeseries/?measure=revenue"))
    assert body["errors"][0]["code"] == "unknown_measure"


def test_an_unknown_dimension_lists_the_allowed_ones(as_owner_a):
    body = _error(as_owner_a.get("/api/v1/analytics/aggregate/?measure=won_value&group_by=owner,colour"))
    assert body["errors"][0]["field"] == "group_by"
    assert body["errors"][0]["code"] == "unknown_dimension"
    assert body["allowed"] == ["owner", "pipeline", "source", "day", "week", "month"]
    body = _error(as_owner_a.get("/api/v1/analytics/aggregate/?measure=activities&pipeline=1"))
    assert body["errors"][0] == {
        "field": "pipeline",
        "code": "unknown_dimension",
        "detail": "activities cannot be filtered by pipeline; it can by: owner, kind.",
    }
    assert body["allowed"] == ["owner", "kind"]
    body = _error(as_owner_a.get("/api/v1/analytics/aggregate/?measure=overdue_tasks&group_by=week"))
    assert body["allowed"] == ["owner"]  # a state of now: no history to group by time
    body = _error(as_owner_a.get("/api/v1/analytics/aggregate/?measure=won_value&group_by=week,month"))
    assert body["errors"][0]["code"] == "invalid_group_by"
    body = _error(as_owner_a.get("/api/v1/analytics/timeseries/?measure=overdue_tasks"))
    assert body["errors"][0]["code"] == "no_history"


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("period=yesterday-ish", "period", "invalid_choice"),
        ("start=2026-01-01", "end", "required"),
        ("start=2026-02-01&end=2026-01-01", "end", "invalid_period"),
        ("start=2000-01-01&end=2026-01-01", "end", "period_too_long"),
        ("start=0001-01-01&end=0001-01-02", "start", "date_out_of_range"),
        ("start=2026-01-01&end=2026-01-31&period=this_month", "period", "period_conflict"),
        ("start=2026-02-30&end=2026-03-01", "start", "invalid"),
        ("owner=0", "owner", "min_value"),
        ("owner=99999999999999999999", "owner", "max_value"),
    ],
)
def test_bad_periods_and_ids_are_400_naming_the_parameter(as_owner_a, query, field, code):
    body = _error(as_owner_a.get(f"/api/v1/analytics/pipeline/?{query}"))
    assert (body["errors"][0]["field"], body["errors"][0]["code"]) == (field, code)


def test_lists_are_pages(as_owner_a):
    page = as_owner_a.get("/api/v1/analytics/measures/?page_size=5").json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert len(page["results"]) == 5
    assert page["count"] > 20
    assert page["next"]
    series = as_owner_a.get(
        "/api/v1/analytics/timeseries/?measure=deals_created&interval=day&start=2026-01-01&end=2026-03-31&page=2"
    ).json()
    assert series["count"] == 90
    assert series["results"][0]["start"] == "2026-01-26"


def test_next_actions_of_an_unknown_or_foreign_deal_is_404(as_owner_a, org_b, in_tenant):
    from pipelines import services as deals

    with in_tenant(org_b):
        foreign = deals.deal_create(actor=SYSTEM, title="Theirs")
    for deal_id in (foreign.pk + 1000, 99999999999999999999):
        response = as_owner_a.get(f"/api/v1/analytics/deals/{deal_id}/next-actions/")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
