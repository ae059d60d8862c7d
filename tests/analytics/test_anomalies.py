"""Anomalies: an injected one is found, a normal week (quiet weekends included) is not, and each anomaly is listed
with its expected range and recorded as an outbox event whose payload follows the published schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import jsonschema
import pytest
from django.utils import timezone

from analytics import services
from analytics.anomalies import judge
from analytics.models import Anomaly, DailyMetric, SnapshotDay
from integrations.events import payload_schema
from integrations.models import OutboxEvent

pytestmark = pytest.mark.django_db


def normal(day: date, index: int) -> float:
    """New leads of a normal day: about 20 on weekdays, 3 at weekends, with a little noise."""
    if day.weekday() >= 5:
        return 3 + index % 2
    return 20 + (index * 7) % 5 - 2


def weeks(end: date, days: int) -> list[tuple[date, float]]:
    start = end - timedelta(days=days - 1)
    return [(start + timedelta(days=i), normal(start + timedelta(days=i), i)) for i in range(days)]


def test_a_normal_week_is_not_flagged_quiet_weekends_included():
    history = weeks(date(2026, 5, 31), 56)
    values = [value for _day, value in history]
    for day, value in weeks(date(2026, 6, 7), 7):
        verdict = judge([*values, value], counts=True)
        assert verdict is not None
        assert not verdict.anomalous, (day, verdict)
        values.append(value)
    # a weekend of 3 is normal; against the weekday level it would be far below any range
    assert verdict.expected < 6


def test_an_injected_spike_and_a_drop_are_found_with_their_expected_range():
    values = [value for _day, value in weeks(date(2026, 6, 1), 56)]  # the day after is Tuesday 2 June
    spike = judge([*values, 80], counts=True)
    assert spike.anomalous
    assert spike.direction == "above"
    assert 17 < spike.expected < 23
    assert spike.lower < spike.expected < spike.upper < 80
    drop = judge([*values, 0], counts=True)
    assert drop.anomalous
    assert drop.direction == "below"


def test_too_little_history_flags_nothing():
    assert judge([20.0] * 20 + [90.0], counts=True) is None


def _history_of_snapshots(end: date, days: int, owner):
    """Snapshots of the ``days`` days up to ``end`` with a normal flow of new leads."""
    tz_utc = UTC
    rows, covered = [], []
    for day, value in weeks(end, days):
        rows.append(DailyMetric(day=day, metric="leads.created", owner=owner, key="website", count=int(value)))
        covered.append(
            SnapshotDay(
                day=day,
                start=datetime(day.year, day.month, day.day, tzinfo=tz_utc),
                end=datetime(day.year, day.month, day.day, tzinfo=tz_utc) + timedelta(days=1),
                time_zone="UTC",
            )
        )
    DailyMetric.objects.bulk_create(rows)
    SnapshotDay.objects.bulk_create(covered)


def test_the_snapshot_finds_the_anomaly_and_records_an_event(org_a, owner_a, in_tenant, history, as_owner_a):
    yesterday = timezone.now().date() - timedelta(days=1)
    with in_tenant(org_a):
        _history_of_snapshots(yesterday - timedelta(days=1), 56, owner_a)
    noon = datetime(yesterday.year, yesterday.month, yesterday.day, 12, tzinfo=UTC)
    for _ in range(70):
        history.lead(owner=owner_a, created=noon)
    with in_tenant(org_a):
        taken = services.snapshot_take()
        assert taken.days == [yesterday]
        assert taken.anomalies == 2  # the organization's series and the owner's
        events = list(OutboxEvent.objects.filter(type="analytics.anomaly_detected"))
        assert len(events) == 2
        for event in events:
            jsonschema.validate(event.payload, payload_schema(event.type))
            assert event.subject_type == "anomaly"
        assert services.anomalies_detect(day=yesterday) == 0  # once only
        assert OutboxEvent.objects.filter(type="analytics.anomaly_detected").count() == 2
    listed = as_owner_a.get("/api/v1/analytics/anomalies/?metric=leads_created").json()["results"]
    assert [row["owner"] for row in listed] == [None, owner_a.pk]
    anomaly = listed[0]
    assert anomaly["day"] == yesterday.isoformat()
    assert anomaly["value"] == "70.00"
    assert anomaly["direction"] == "above"
    assert float(anomaly["lower"]) <= float(anomaly["expected"]) <= float(anomaly["upper"]) < 70
    assert as_owner_a.get(f"/api/v1/analytics/anomalies/?since={timezone.now().date()}").json()["count"] == 0


def test_a_normal_day_records_nothing(org_a, owner_a, in_tenant, history):
    yesterday = timezone.now().date() - timedelta(days=1)
    with in_tenant(org_a):
        _history_of_snapshots(yesterday - timedelta(days=1), 56, owner_a)
    index = 56
    for _ in range(int(normal(yesterday, index))):
        history.lead(owner=owner_a, created=datetime(yesterday.year, yesterday.month, yesterday.day, 12, tzinfo=UTC))
    with in_tenant(org_a):
        assert services.snapshot_take().anomalies == 0
        assert not Anomaly.objects.exists()
