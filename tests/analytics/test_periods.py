"""Time zones and period boundaries: local days, Monday weeks across a DST change, month ends, previous periods."""

from __future__ import annotations

import types
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone

from analytics import selectors, services
from analytics.periods import Period, bucket_count, buckets, preset, time_zone_name, time_zone_of
from rbac.access import access_for

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def test_the_time_zone_is_the_organizations_when_it_has_one():
    assert time_zone_name(types.SimpleNamespace(time_zone="Europe/Berlin")) == "Europe/Berlin"
    assert time_zone_name(types.SimpleNamespace(time_zone="")) == "UTC"
    assert time_zone_name(types.SimpleNamespace()) == "UTC"
    with override_settings(TIME_ZONE="America/New_York"):
        assert time_zone_name(types.SimpleNamespace()) == "America/New_York"
    assert time_zone_of(types.SimpleNamespace(time_zone="Mars/Olympus")).key == "UTC"


@pytest.mark.parametrize(
    ("name", "today", "start", "end", "previous_start", "previous_end"),
    [
        ("this_month", date(2026, 3, 31), date(2026, 3, 1), date(2026, 3, 31), date(2026, 2, 1), date(2026, 2, 28)),
        ("last_month", date(2026, 3, 31), date(2026, 2, 1), date(2026, 2, 28), date(2026, 1, 1), date(2026, 1, 31)),
        ("last_month", date(2026, 1, 15), date(2025, 12, 1), date(2025, 12, 31), date(2025, 11, 1), date(2025, 11, 30)),
        ("this_month", date(2024, 2, 29), date(2024, 2, 1), date(2024, 2, 29), date(2024, 1, 1), date(2024, 1, 31)),
        ("this_week", date(2026, 3, 29), date(2026, 3, 23), date(2026, 3, 29), date(2026, 3, 16), date(2026, 3, 22)),
        ("last_week", date(2026, 3, 30), date(2026, 3, 23), date(2026, 3, 29), date(2026, 3, 16), date(2026, 3, 22)),
        ("this_quarter", date(2026, 2, 10), date(2026, 1, 1), date(2026, 3, 31), date(2025, 10, 1), date(2025, 12, 31)),
        ("last_year", date(2026, 2, 10), date(2025, 1, 1), date(2025, 12, 31), date(2024, 1, 1), date(2024, 12, 31)),
        ("last_7_days", date(2026, 3, 1), date(2026, 2, 23), date(2026, 3, 1), date(2026, 2, 16), date(2026, 2, 22)),
        ("today", date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 1), date(2026, 2, 28), date(2026, 2, 28)),
    ],
)
def test_presets_and_their_previous_period(name, today, start, end, previous_start, previous_end):
    period = preset(name, today=today, tz=BERLIN)
    assert (period.start, period.end) == (start, end)
    previous = period.previous()
    assert (previous.start, previous.end) == (previous_start, previous_end)


def test_a_dst_week_is_one_week_of_167_hours():
    week = Period(date(2026, 3, 23), date(2026, 3, 29), BERLIN)
    assert week.start_at == datetime(2026, 3, 22, 23, tzinfo=UTC)  # Monday 00:00 CET
    assert week.end_at == datetime(2026, 3, 29, 22, tzinfo=UTC)  # next Monday 00:00 CEST
    assert (week.end_at - week.start_at).total_seconds() == 167 * 3600
    autumn = Period(date(2026, 10, 19), date(2026, 10, 25), BERLIN)
    assert (autumn.end_at - autumn.start_at).total_seconds() == 169 * 3600


def test_buckets_cover_the_period():
    period = Period(date(2026, 1, 31), date(2026, 3, 2), BERLIN)
    assert list(buckets(period, "month")) == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert list(buckets(period, "week"))[0] == date(2026, 1, 26)
    assert bucket_count(period, "week") == len(list(buckets(period, "week")))
    assert bucket_count(period, "day") == 31


# --- figures in the organization's time zone, from the records and from the snapshots ---

# Monday 00:30 CET, Sunday 23:30 CEST (the DST day), and Monday 00:30 CEST of the next week.
DST_MOMENTS = [datetime(2026, 3, 22, 23, 30, tzinfo=UTC), datetime(2026, 3, 29, 21, 30, tzinfo=UTC)]
NEXT_WEEK = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)


@pytest.fixture
def dst_activities(history, owner_a):
    for moment in [*DST_MOMENTS, NEXT_WEEK]:
        history.activity(owner=owner_a, created=moment)
    # Saturday 31 January 23:30 in New York is already February in UTC.
    history.activity(owner=owner_a, created=datetime(2026, 2, 1, 4, 30, tzinfo=UTC))


def _series(org, owner, in_tenant, tz, interval, start, end):
    access = access_for(user=owner, organization=org)
    query = selectors.AggregateQuery(
        measure="activities", period=Period(start, end, tz), group_by=(), interval=interval
    )
    with in_tenant(org):
        rows = selectors.aggregate(actor=access, query=query, tz=tz)
    return {row["group"][interval]: row["value"] for row in rows}


def _check_local_buckets(org, owner, in_tenant):
    weeks = _series(org, owner, in_tenant, BERLIN, "week", date(2026, 3, 16), date(2026, 4, 5))
    assert weeks == {date(2026, 3, 16): 0, date(2026, 3, 23): 2, date(2026, 3, 30): 1}
    days = _series(org, owner, in_tenant, BERLIN, "day", date(2026, 3, 28), date(2026, 3, 30))
    assert days == {date(2026, 3, 28): 0, date(2026, 3, 29): 1, date(2026, 3, 30): 1}
    months = _series(org, owner, in_tenant, NEW_YORK, "month", date(2026, 1, 1), date(2026, 2, 28))
    assert months == {date(2026, 1, 1): 1, date(2026, 2, 1): 0}


def test_weeks_days_and_months_are_local_from_the_records(org_a, owner_a, in_tenant, dst_activities):
    _check_local_buckets(org_a, owner_a, in_tenant)
    utc_weeks = _series(org_a, owner_a, in_tenant, ZoneInfo("UTC"), "week", date(2026, 3, 16), date(2026, 4, 5))
    assert utc_weeks == {date(2026, 3, 16): 1, date(2026, 3, 23): 2, date(2026, 3, 30): 0}


def test_weeks_days_and_months_are_local_from_the_snapshots(org_a, owner_a, in_tenant, dst_activities):
    """Snapshots are taken per local day of the organization: Berlin's days for the Berlin figures."""
    with in_tenant(org_a):
        taken = services.snapshot_take(organization=types.SimpleNamespace(time_zone="Europe/Berlin"))
    assert taken.days[0] == date(2026, 2, 1)
    weeks = _series(org_a, owner_a, in_tenant, BERLIN, "week", date(2026, 3, 16), date(2026, 4, 5))
    assert weeks == {date(2026, 3, 16): 0, date(2026, 3, 23): 2, date(2026, 3, 30): 1}
    days = _series(org_a, owner_a, in_tenant, BERLIN, "day", date(2026, 3, 28), date(2026, 3, 30))
    assert days == {date(2026, 3, 28): 0, date(2026, 3, 29): 1, date(2026, 3, 30): 1}


def test_the_api_answers_in_the_organizations_time_zone(monkeypatch, as_owner_a, dst_activities):
    monkeypatch.setattr("analytics.periods.time_zone_name", lambda organization: "Europe/Berlin")
    body = as_owner_a.get(
        "/api/v1/analytics/timeseries/?measure=activities&interval=week&start=2026-03-16&end=2026-04-05"
    ).json()
    assert [(point["start"], point["value"]) for point in body["results"]] == [
        ("2026-03-16", 0),
        ("2026-03-23", 2),
        ("2026-03-30", 1),
    ]
    report = as_owner_a.get("/api/v1/analytics/activity/?start=2026-03-23&end=2026-03-29").json()
    assert report["period"]["time_zone"] == "Europe/Berlin"
    assert report["total"]["value"] == 2
    assert report["period"]["previous_start"] == "2026-03-16"


def test_a_month_series_starts_and_ends_with_the_period(as_owner_a, dst_activities):
    body = as_owner_a.get(
        "/api/v1/analytics/timeseries/?measure=activities&interval=month&start=2026-01-15&end=2026-03-10"
    ).json()
    assert [(p["start"], p["end"]) for p in body["results"]] == [
        ("2026-01-15", "2026-01-31"),
        ("2026-02-01", "2026-02-28"),
        ("2026-03-01", "2026-03-10"),
    ]


def test_today_is_the_organizations_today(monkeypatch, as_owner_a):
    """Late evening in New York is already tomorrow in UTC: ``today`` follows the organization."""
    monkeypatch.setattr("analytics.periods.time_zone_name", lambda organization: "Pacific/Kiritimati")
    body = as_owner_a.get("/api/v1/analytics/pipeline/?period=today").json()
    assert body["period"]["start"] == timezone.now().astimezone(ZoneInfo("Pacific/Kiritimati")).date().isoformat()
