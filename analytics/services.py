"""Writes of analytics, run by the system (Celery beat, per organization): the daily snapshot, the anomalies of the
newest day, and the weekly forecast snapshot.

:func:`snapshot_take` is idempotent and catches up: it snapshots every complete local day that has no snapshot yet
(on the first run, the whole history, from the organization's first record), so a missed run, a late beat or a
stopped worker loses nothing. Every flow is aggregated by PostgreSQL into a few hundred rows a day with
``INSERT … SELECT``, so its memory does not grow with the number of records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Max, Min, Sum
from django.utils import timezone

from config.db import connection
from config.locks import LockNamespace, xact_lock
from crm.models import Activity, Lead
from integrations import outbox
from pipelines.models import Deal
from rbac.actor import SystemActor

from . import cache
from .anomalies import SERIES, WINDOW_DAYS, judge
from .choices import Metric
from .engine import Engine, sql_of
from .facts import FACTS, FLOWS
from .forecasts import forecast_rows
from .models import Anomaly, DailyMetric, ForecastSnapshot, SnapshotDay
from .periods import local_date, local_midnight, time_zone_of, week_start

logger = logging.getLogger(__name__)

# Activities created more than this before a day's end have an id below the floor of the next day's tail.
FLOOR_MARGIN = timedelta(minutes=5)
ANOMALY_EVENT = "analytics.anomaly_detected"
#: Snapshots, forecasts and anomalies are computed over every record, as the system.
SNAPSHOTS = SystemActor("analytics snapshots")
GROUP_COLUMNS = ["d_day", "d_owner", "d_pipeline", "d_stage", "d_key"]


@dataclass
class SnapshotResult:
    days: list[date] = field(default_factory=list)
    rows: int = 0
    anomalies: int = 0
    forecast_rows: int = 0


def _lock() -> None:
    """One snapshot at a time per organization (a transaction-scoped advisory lock on the schema's name)."""
    xact_lock(LockNamespace.ANALYTICS_SNAPSHOT, connection.schema_name)


def _first_record_day(tz) -> date | None:
    instants = [
        Deal.objects.aggregate(first=Min("created_at"))["first"],
        Lead.objects.aggregate(first=Min("created_at"))["first"],
        Activity.objects.aggregate(first=Min("created_at"))["first"],  # a full scan, on the first run only
    ]
    found = [instant for instant in instants if instant is not None]
    return local_date(min(found), tz) if found else None


def _insert_flow(metric: str, *, start: datetime, end: datetime, tz, floor: int | None) -> int:
    fact = FACTS[metric]
    grouped = fact.grouped(
        fact.model._default_manager.all(), start=start, end=end, tz=tz, floor=floor, by=GROUP_COLUMNS
    )
    found = sql_of(grouped)
    if found is None:
        return 0
    sql, params = found
    durations = "g.durs" if fact.durations else "NULL"
    table = DailyMetric._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{table}"
                (day, metric, owner_id, pipeline_id, stage_id, key, count, amount, seconds, durations)
            SELECT g.d_day, %s, g.d_owner::bigint, g.d_pipeline::bigint, g.d_stage::bigint, COALESCE(g.d_key, ''),
                   g.n, COALESCE(g.total, 0),
                   COALESCE(g.secs, 0), {durations}
            FROM ({sql}) AS g""",
            [metric, *params],
        )
        return cursor.rowcount


def _insert_open_state(day: date, tz) -> int:
    fact = FACTS[Metric.DEALS_OPEN]
    grouped = fact.grouped(Deal.objects.all(), start=None, end=None, tz=tz, by=GROUP_COLUMNS[1:])
    found = sql_of(grouped)
    if found is None:  # no open stage: no pipeline yet
        return 0
    sql, params = found
    table = DailyMetric._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{table}" (day, metric, owner_id, pipeline_id, stage_id, key, count, amount, seconds)
            SELECT %s, %s, g.d_owner::bigint, g.d_pipeline::bigint, g.d_stage::bigint, '', g.n, COALESCE(g.total, 0), 0
            FROM ({sql}) AS g""",
            [day, Metric.DEALS_OPEN.value, *params],
        )
        return cursor.rowcount


def _activity_floor(end: datetime, previous: int) -> int:
    found = Activity.objects.filter(pk__gt=previous, created_at__lt=end - FLOOR_MARGIN).aggregate(top=Max("pk"))["top"]
    return found or previous


@transaction.atomic
def snapshot_take(*, now: datetime | None = None, organization=None) -> SnapshotResult:
    """Snapshot the complete local days not snapshotted yet, look for anomalies on the newest, and keep this week's
    forecast if it is not kept yet. Runs in the organization's schema, as the system."""
    organization = organization or connection.tenant
    tz = time_zone_of(organization)
    now = now or timezone.now()
    _lock()
    result = SnapshotResult()
    yesterday = local_date(now, tz) - timedelta(days=1)
    last = SnapshotDay.objects.order_by("-day").first()
    if last is not None:
        first_day, start = last.day + timedelta(days=1), last.end
        # The last day's floor; a day without one (within a first run's history) has it found by primary key.
        floor = last.activity_floor or _activity_floor(start, 0)
    else:
        first_day = min(_first_record_day(tz) or yesterday, yesterday)
        start, floor = local_midnight(first_day, tz), 0
    if first_day <= yesterday:
        end = local_midnight(yesterday + timedelta(days=1), tz)
        for metric in FLOWS:
            result.rows += _insert_flow(metric, start=start, end=end, tz=tz, floor=floor or None)
        result.rows += _insert_open_state(yesterday, tz)
        new_floor = _activity_floor(end, floor)
        days = [first_day + timedelta(days=offset) for offset in range((yesterday - first_day).days + 1)]
        SnapshotDay.objects.bulk_create(
            [
                SnapshotDay(
                    day=day,
                    start=start if day == first_day else local_midnight(day, tz),
                    end=local_midnight(day + timedelta(days=1), tz),
                    time_zone=tz.key,
                    has_open_state=day == yesterday,
                    activity_floor=new_floor if day == yesterday else floor,
                )
                for day in days
            ]
        )
        result.days = days
        result.anomalies = anomalies_detect(day=yesterday)
    week = week_start(local_date(now, tz))
    if not ForecastSnapshot.objects.filter(week=week).exists():
        rows = forecast_rows(Engine(SNAPSHOTS, tz=tz, now=now), week=week)
        ForecastSnapshot.objects.bulk_create(rows)
        result.forecast_rows = len(rows)
    cache.invalidate()
    return result


def anomalies_detect(*, day: date) -> int:
    """Judge ``day`` on every anomaly series, for the organization and for each owner, from the snapshots of the
    ``WINDOW_DAYS`` before it; record each anomaly found (once) with an ``analytics.anomaly_detected`` event."""
    first = SnapshotDay.objects.aggregate(first=Min("day"))["first"]
    if first is None:
        return 0
    window_start = max(day - timedelta(days=WINDOW_DAYS), first)
    days = (day - window_start).days + 1
    found = 0
    for series in SERIES.values():
        rows = (
            DailyMetric.objects.filter(metric=series.metric, day__gte=window_start, day__lte=day)
            .values("day", "owner_id")
            .annotate(value=Sum(series.field))
            .order_by()
        )
        per_owner: dict[int | None, list[float]] = {}
        total = [0.0] * days
        for row in rows:
            index = (row["day"] - window_start).days
            values = per_owner.setdefault(row["owner_id"], [0.0] * days)
            values[index] += float(row["value"] or 0)
            total[index] += float(row["value"] or 0)
        candidates = [(None, total)] + [(owner, values) for owner, values in per_owner.items() if owner is not None]
        for owner_id, values in candidates:
            verdict = judge(values, counts=series.field == "count")
            if verdict is None or not verdict.anomalous:
                continue
            found += _record_anomaly(day, series.name, owner_id, verdict)
    return found


def _record_anomaly(day: date, metric: str, owner_id: int | None, verdict) -> int:
    def amount(value: float) -> Decimal:
        return Decimal(str(round(value, 2)))

    anomaly, created = Anomaly.objects.get_or_create(
        day=day,
        metric=metric,
        owner_id=owner_id,
        defaults={
            "value": amount(verdict.value),
            "expected": amount(verdict.expected),
            "lower": amount(verdict.lower),
            "upper": amount(verdict.upper),
            "direction": verdict.direction,
            "score": verdict.score,
        },
    )
    if not created:
        return 0
    outbox.record(ANOMALY_EVENT, subject=anomaly, payload=anomaly_payload(anomaly), actor=SNAPSHOTS)
    return 1


def anomaly_payload(anomaly: Anomaly) -> dict:
    return {
        "id": anomaly.pk,
        "day": anomaly.day,
        "metric": anomaly.metric,
        "owner": anomaly.owner_id,
        "value": anomaly.value,
        "expected": anomaly.expected,
        "lower": anomaly.lower,
        "upper": anomaly.upper,
        "direction": anomaly.direction,
        "score": anomaly.score,
    }
