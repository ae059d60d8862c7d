"""Forecast: intervals on series with a known answer, calibrated stage probabilities, weekly snapshots, accuracy."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from scipy import stats

from analytics import services
from analytics.forecasts import CALIBRATION_MIN_DEALS, RunRate, month_forecast
from analytics.models import ForecastSnapshot
from analytics.periods import add_months, month_start

pytestmark = pytest.mark.django_db

Z80 = stats.norm.ppf(0.9)  # 1.2816
T80_2 = stats.t.ppf(0.9, 2)  # 1.8856


def test_run_rate_interval_is_students_t_prediction_interval():
    run_rate = RunRate.of([80, 100, 120])
    assert run_rate.mean == 100
    assert run_rate.spread == 20  # sample standard deviation
    assert run_rate.half_width(0.8) == pytest.approx(1.8856 * 20 * math.sqrt(4 / 3), abs=1e-3)  # 43.546
    assert RunRate.of([]).half_width(0.95) == 0
    assert RunRate.of([50]).half_width(0.8) == pytest.approx(Z80 * 50)  # too little history: spread taken as the mean


def test_pipeline_interval_is_a_sum_of_bernoulli_deals():
    # two deals of 100 at 50%: mean 100, variance 2 × 0.25 × 100² = 5000
    result = month_forecast(committed=0, pipeline=[(0.5, 200, 20000)], run_rate=RunRate.of([]))
    assert result["expected"] == Decimal("100.00")
    half = Z80 * math.sqrt(5000)  # 90.62
    assert result["low_80"] == Decimal(str(round(100 - half, 2)))
    assert result["high_80"] == Decimal(str(round(100 + half, 2)))
    # what is already won is certain: the lower bound never goes below it
    result = month_forecast(committed=500, pipeline=[(0.5, 200, 20000)], run_rate=RunRate.of([]))
    assert result["low_95"] == Decimal("500.00")
    assert result["expected"] == Decimal("600.00")


def _month_moment(months_back: int, day: int = 5) -> datetime:
    first = add_months(month_start(timezone.now().date()), -months_back)
    return datetime(first.year, first.month, day, 12, tzinfo=UTC)


def test_the_forecast_of_a_known_series(as_owner_a, history, owner_a):
    """Business won from deals created the same month was 80, 100, 120 in the last three months (the first deal is
    three months old); two open deals of 100 at 50% are expected to close next month."""
    for months_back, amount in [(3, 80), (2, 100), (1, 120)]:
        history.deal(
            owner=owner_a,
            amount=str(amount),
            created=_month_moment(months_back),
            won=_month_moment(months_back, 20),
        )
    next_month = add_months(month_start(timezone.now().date()), 1)
    for _ in range(2):
        history.deal(
            owner=owner_a,
            amount="100",
            created=timezone.now() - timedelta(days=1),
            path=[("Proposal", timezone.now())],
            expected_close_date=next_month + timedelta(days=9),
        )
    body = as_owner_a.get("/api/v1/analytics/forecast/?months=3").json()
    assert body["run_rate_months"] == 3
    month = body["months"][1]
    assert month["month"] == next_month.strftime("%Y-%m")
    assert month["open_deals"] == 2
    assert month["run_rate"] == "100.00"
    assert month["pipeline"] == "100.00"
    assert month["expected"] == "200.00"
    half = math.hypot(Z80 * math.sqrt(5000), T80_2 * 20 * math.sqrt(4 / 3))  # 100.54
    assert Decimal(month["low_80"]) == pytest.approx(Decimal(str(200 - half)), abs=Decimal("0.01"))
    assert Decimal(month["high_80"]) == pytest.approx(Decimal(str(200 + half)), abs=Decimal("0.01"))
    assert Decimal(month["low_95"]) < Decimal(month["low_80"])
    third = body["months"][2]
    assert third["expected"] == "100.00"  # the run-rate alone
    assert Decimal(third["high_80"]) - Decimal("100") == pytest.approx(
        Decimal(str(T80_2 * 20 * math.sqrt(4 / 3))), abs=Decimal("0.01")
    )


def _closed_at_proposal(history, owner, *, won: int, lost: int):
    now = timezone.now()
    for index in range(won + lost):
        start = now - timedelta(days=60 + index)
        history.deal(
            owner=owner,
            created=start,
            path=[("Proposal", start + timedelta(days=5))],
            won=start + timedelta(days=10) if index < won else None,
            lost=start + timedelta(days=10) if index >= won else None,
        )


def _probabilities(client):
    body = client.get("/api/v1/analytics/forecast/").json()
    return {item["stage"]["name"]: item for item in body["probabilities"]}


def test_stage_probabilities_are_calibrated_with_enough_history(as_owner_a, history, owner_a):
    assert CALIBRATION_MIN_DEALS == 30
    _closed_at_proposal(history, owner_a, won=12, lost=18)
    probabilities = _probabilities(as_owner_a)
    proposal = probabilities["Proposal"]
    assert proposal == {
        "stage": proposal["stage"],
        "configured": 0.5,
        "calibrated": 0.4,
        "closed_deals": 30,
        "won": 12,
        "used": 0.4,
        "basis": "calibrated",
    }
    assert probabilities["Qualification"]["used"] == 0.4
    # only the 12 won deals got past Proposal: too few to calibrate Negotiation
    assert probabilities["Negotiation"]["closed_deals"] == 12
    assert probabilities["Negotiation"]["calibrated"] == 1.0
    assert probabilities["Negotiation"]["used"] == 0.75
    assert probabilities["Negotiation"]["basis"] == "configured"


def test_below_the_threshold_the_configured_probability_is_used(as_owner_a, history, owner_a):
    _closed_at_proposal(history, owner_a, won=12, lost=17)
    proposal = _probabilities(as_owner_a)["Proposal"]
    assert (proposal["closed_deals"], proposal["calibrated"], proposal["used"], proposal["basis"]) == (
        29,
        round(12 / 29, 4),
        0.5,
        "configured",
    )


def test_calibrated_probabilities_weigh_the_forecast(as_owner_a, history, owner_a):
    _closed_at_proposal(history, owner_a, won=12, lost=18)
    history.deal(
        owner=owner_a,
        amount="1000",
        created=timezone.now(),
        path=[("Proposal", timezone.now())],
        expected_close_date=timezone.now().date(),
    )
    current = as_owner_a.get("/api/v1/analytics/forecast/").json()["months"][0]
    assert current["pipeline"] == "400.00"


def test_forecasts_are_kept_weekly_and_measured_against_what_was_won(
    org_a, owner_a, member, in_tenant, as_owner_a, history
):
    rep, rep_client = member(org_a, "sales_rep")
    history.deal(owner=rep, amount="300", created=timezone.now(), expected_close_date=timezone.now().date())
    last_month = add_months(month_start(timezone.now().date()), -1)
    won_at = datetime(last_month.year, last_month.month, 15, 12, tzinfo=UTC)
    history.deal(owner=rep, amount="120", created=won_at - timedelta(days=3), won=won_at)
    with in_tenant(org_a):
        first = services.snapshot_take()
        again = services.snapshot_take()
        kept = list(ForecastSnapshot.objects.values_list("owner_id", flat=True).distinct())
    assert first.forecast_rows == 6  # 3 months for the organization and 3 for the rep
    assert again.forecast_rows == 0  # once a week
    assert set(kept) == {None, rep.pk}

    monday_before = last_month - timedelta(days=last_month.weekday() or 7)
    with in_tenant(org_a):
        for week, expected in [
            (monday_before - timedelta(days=7), 10),
            (monday_before, 100),
            (last_month + timedelta(days=8), 5),
        ]:
            for owner in (None, rep):
                ForecastSnapshot.objects.create(
                    week=week,
                    month=last_month,
                    owner=owner,
                    expected=expected,
                    low_80=50,
                    high_80=150,
                    low_95=20,
                    high_95=200,
                )
    rows = rep_client.get("/api/v1/analytics/forecast/accuracy/?months=1").json()["results"]
    assert len(rows) == 1
    assert rows[0]["owner"]["id"] == rep.pk
    month = rows[0]["months"][0]
    assert month["forecast"] == "100.00"  # made at the month's start: the last snapshot on or before its first day
    assert month["forecast_week"] == monday_before.isoformat()
    assert month["actual"] == "120.00"
    assert month["error"] == "20.00"
    assert month["absolute_percentage_error"] == round(20 / 120, 4)
    assert month["within_80"] is True
    assert rows[0]["hit_rate_80"] == 1.0
    everyone = as_owner_a.get("/api/v1/analytics/forecast/accuracy/?months=1").json()["results"]
    assert {row["owner"]["id"] if row["owner"] else None for row in everyone} == {None, rep.pk}
    assert date.fromisoformat(month["forecast_week"]) <= last_month
