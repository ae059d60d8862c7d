"""The engine every figure goes through: one query shape (measure × group-by × period × filters), evaluated over
what the caller may see.

Sources of figures, by kind:

- **flows** (deals created, won, lost, closed, stage exits, leads created, activities logged): the daily snapshots
  for the days they cover, plus the records themselves for the live tail after the last snapshot (usually today);
- **the open pipeline** (a state): the records now, or the snapshot taken at the end of a past day;
- **cohorts** (the leads created in a period: their statuses now, their first activity): the records, through the
  ``created_at`` index;
- **live states** (overdue tasks, deals without a next step): the records now.

Every read of records goes through ``Model.objects.visible_to(actor, permission)`` with the record type's view
permission, and every read of snapshots through the same method on the snapshot table (keyed by owner), so a
Sales Rep with ``own`` scope gets figures over his own records only. A :class:`rbac.actor.SystemActor` (the
snapshot task) reads everything; anything but an actor is refused (``rbac.actor.require_actor``). Each source is
computed once per request and period, whatever the number of measures that use it; each costs one or two queries,
whatever the number of records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Count,
    DateField,
    Exists,
    F,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Trunc, TruncDate

from crm.choices import ActivityKind, LeadStatus
from crm.models import Activity, Lead
from pipelines.models import Deal, Pipeline, Stage
from rbac.actor import Actor, require_actor

from .choices import Interval, Metric
from .facts import ACTIVITY_VIEW, DEAL_VIEW, DIMENSION_COLUMNS, FACTS, LEAD_VIEW, SNAPSHOT_COLUMNS, open_deals
from .models import DailyMetric, SnapshotDay
from .periods import Period, bucket_end, buckets, local_date

# A blank lead source (or any blank key) is reported under this key, as the CRM's statistics do.
NONE_KEY = "none"
# Public dimension → the fact's column it groups by (``key`` holds the source, kind or outcome).
KEY_DIMENSIONS = ("source", "kind", "outcome")


def fact_dimension(dimension: str) -> str:
    return "key" if dimension in KEY_DIMENSIONS else dimension


@dataclass(frozen=True)
class Grouping:
    """What a figure is computed over and grouped by. ``by``: public dimensions; ``interval``: time buckets."""

    period: Period
    by: tuple[str, ...] = ()
    interval: str | None = None
    filters: tuple[tuple[str, Any], ...] = ()

    def with_by(self, *extra: str) -> Grouping:
        return Grouping(self.period, (*self.by, *[d for d in extra if d not in self.by]), self.interval, self.filters)

    def with_period(self, period: Period) -> Grouping:
        return Grouping(period, self.by, self.interval, self.filters)

    def without_interval(self) -> Grouping:
        return Grouping(self.period, self.by, None, self.filters)

    @property
    def width(self) -> int:
        return len(self.by) + (1 if self.interval else 0)


Rows = dict[tuple, dict[str, Any]]


def _external(dimension: str, value: Any) -> Any:
    if dimension in KEY_DIMENSIONS:
        return value or NONE_KEY
    return value


def _internal(dimension: str, value: Any) -> Any:
    if dimension in KEY_DIMENSIONS and value == NONE_KEY:
        return ""
    return value


@dataclass
class Coverage:
    """The instants the snapshots cover, ``[start, end)``, their days, and the activity floor of the last day."""

    start: datetime | None = None
    end: datetime | None = None
    first_day: date | None = None
    last_day: date | None = None
    floor: int = 0
    open_days: set[date] = field(default_factory=set)


class Engine:
    def __init__(self, actor: Actor, *, tz: ZoneInfo, now: datetime):
        self.actor = require_actor(actor)
        self.tz = tz
        self.now = now
        self.today = local_date(now, tz)
        self.memo: dict[tuple, Any] = {}

    # --- what the caller may see ---

    def visible(self, model, permission: str) -> QuerySet:
        return model.objects.visible_to(self.actor, permission)

    def snapshots(self, metric: str, permission: str) -> QuerySet:
        return self.visible(DailyMetric, permission).filter(metric=metric)

    # --- shared lookups (one query each per request) ---

    @cached_property
    def coverage(self) -> Coverage:
        found = SnapshotDay.objects.aggregate(start=Min("start"), end=Max("end"), first=Min("day"), last=Max("day"))
        if found["end"] is None:
            return Coverage()
        floor = SnapshotDay.objects.filter(day=found["last"]).values_list("activity_floor", flat=True).first() or 0
        return Coverage(found["start"], found["end"], found["first"], found["last"], floor)

    def open_days(self, days: Iterable[date]) -> set[date]:
        return set(SnapshotDay.objects.filter(day__in=list(days), has_open_state=True).values_list("day", flat=True))

    @cached_property
    def stages(self) -> dict[int, Stage]:
        return {
            stage.pk: stage for stage in Stage.objects.select_related("pipeline").order_by("pipeline_id", "position")
        }

    @cached_property
    def default_pipeline(self) -> Pipeline | None:
        return Pipeline.objects.filter(is_default=True).first() or Pipeline.objects.order_by("pk").first()

    # --- grouping helpers ---

    def _group_snapshot(self, grouping: Grouping, queryset: QuerySet) -> tuple[QuerySet, list[str]]:
        names, exprs = [], {}
        if grouping.interval:
            exprs["g_t"] = (
                F("day")
                if grouping.interval == Interval.DAY
                else Trunc("day", grouping.interval, output_field=DateField())
            )
            names.append("g_t")
        for index, dimension in enumerate(grouping.by):
            exprs[f"g{index}"] = F(SNAPSHOT_COLUMNS[fact_dimension(dimension)])
            names.append(f"g{index}")
        for dimension, value in grouping.filters:
            queryset = queryset.filter(**{SNAPSHOT_COLUMNS[fact_dimension(dimension)]: _internal(dimension, value)})
        return queryset.annotate(**exprs), names

    def _group_records(self, grouping: Grouping, queryset: QuerySet, day: str = "d_day") -> tuple[QuerySet, list[str]]:
        names, exprs = [], {}
        if grouping.interval:
            exprs["g_t"] = (
                F(day) if grouping.interval == Interval.DAY else Trunc(day, grouping.interval, output_field=DateField())
            )
            names.append("g_t")
        for index, dimension in enumerate(grouping.by):
            exprs[f"g{index}"] = F(DIMENSION_COLUMNS[fact_dimension(dimension)])
            names.append(f"g{index}")
        for dimension, value in grouping.filters:
            queryset = queryset.filter(**{DIMENSION_COLUMNS[fact_dimension(dimension)]: _internal(dimension, value)})
        return queryset.annotate(**exprs), names

    @staticmethod
    def _key(row: dict, names: list[str], grouping: Grouping) -> tuple:
        values = [row[name] for name in names]
        if grouping.interval:
            head, rest = values[:1], values[1:]
        else:
            head, rest = [], values
        return (*head, *(_external(dim, value) for dim, value in zip(grouping.by, rest, strict=True)))

    # --- flows: snapshots + live tail ---

    def _ranges(self, period: Period) -> tuple[tuple[date, date] | None, tuple[datetime, datetime] | None]:
        """(snapshot days, live instants) that make up ``period``."""
        start, end = period.start_at, period.end_at
        coverage = self.coverage
        if coverage.end is None:
            return None, (start, end) if start < self.now else None
        # Set together with ``end``.
        assert coverage.start is not None
        assert coverage.first_day is not None
        assert coverage.last_day is not None
        days = None
        if start < coverage.end and end > coverage.start:
            days = (max(period.start, coverage.first_day), min(period.end, coverage.last_day))
        tail_start = max(start, coverage.end)
        live = (tail_start, end) if tail_start < end and tail_start < self.now else None
        return days, live

    def flow(self, metric: str, grouping: Grouping) -> Rows:
        """``{key: {"n", "total", "secs"}}`` of a flow over the period."""
        memo = ("flow", metric, grouping)
        if memo in self.memo:
            return self.memo[memo]
        fact = FACTS[metric]
        days, live = self._ranges(grouping.period)
        rows: Rows = defaultdict(lambda: {"n": 0, "total": Decimal("0"), "secs": 0})
        if days is not None:
            queryset = self.snapshots(metric, fact.permission).filter(day__gte=days[0], day__lte=days[1])
            queryset, names = self._group_snapshot(grouping, queryset)
            aggregated = grouped(queryset.order_by(), names, n=Sum("count"), total=Sum("amount"), secs=Sum("seconds"))
            self._add(rows, aggregated, names, grouping)
        if live is not None:
            floor = self.coverage.floor if self.coverage.end is not None and live[0] >= self.coverage.end else None
            queryset = fact.rows(
                self.visible(fact.model, fact.permission), start=live[0], end=live[1], tz=self.tz, floor=floor
            )
            queryset, names = self._group_records(grouping, queryset)
            aggregated = grouped(queryset, names, n=Count("*"), total=Sum("v_amount"), secs=Sum("v_seconds"))
            self._add(rows, aggregated, names, grouping)
        self.memo[memo] = rows
        return rows

    def _add(self, rows: Rows, aggregated, names: list[str], grouping: Grouping) -> None:
        for row in aggregated:
            target = rows[self._key(row, names, grouping)]
            target["n"] += int(row["n"] or 0)
            target["total"] += row["total"] or Decimal("0")
            target["secs"] += int(row["secs"] or 0)

    def median_seconds(self, metric: str, grouping: Grouping) -> dict[tuple, float]:
        """The exact median duration per group of a flow that keeps its durations (stage exits): every duration of
        the snapshots (``unnest``) and of the live tail, in one ``percentile_cont`` query."""
        memo = ("median", metric, grouping)
        if memo in self.memo:
            return self.memo[memo]
        fact = FACTS[metric]
        days, live = self._ranges(grouping.period)
        found: list[tuple[str, tuple] | None] = []
        names: list[str] = []
        if days is not None:
            queryset = self.snapshots(metric, fact.permission).filter(day__gte=days[0], day__lte=days[1])
            queryset, names = self._group_snapshot(grouping, queryset)
            queryset = queryset.annotate(sec=Func(F("durations"), function="UNNEST", output_field=BigIntegerField()))
            found.append(sql_of(queryset.order_by().values(*names, "sec")))
        if live is not None:
            floor = self.coverage.floor if self.coverage.end is not None and live[0] >= self.coverage.end else None
            queryset = fact.rows(
                self.visible(fact.model, fact.permission), start=live[0], end=live[1], tz=self.tz, floor=floor
            )
            queryset, names = self._group_records(grouping, queryset)
            found.append(sql_of(queryset.values(*names, sec=F("v_seconds"))))
        result: dict[tuple, float] = {}
        parts = [part for part in found if part is not None]
        if parts:
            columns = ", ".join(f'u."{name}"' for name in names)
            union = " UNION ALL ".join(f"({sql})" for sql, _params in parts)
            params = [param for _sql, part_params in parts for param in part_params]
            select = f"{columns}, " if columns else ""
            group = f"GROUP BY {columns}" if columns else ""
            sql = f"SELECT {select}percentile_cont(0.5) WITHIN GROUP (ORDER BY u.sec) FROM ({union}) u {group}"
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                for row in cursor.fetchall():
                    if row[-1] is not None:
                        result[self._key(dict(zip(names, row[:-1], strict=True)), names, grouping)] = float(row[-1])
        self.memo[memo] = result
        return result

    # --- the open pipeline: now, or at the end of past days ---

    def open_now(self, grouping: Grouping) -> Rows:
        """The open pipeline now, grouped as asked. One index-only scan per request: always grouped by stage too
        (the weighted value needs it), and summed over stages here when the grouping has none."""
        plain = grouping.without_interval()
        staged = plain.with_by("stage")
        memo = ("open-now", staged)
        if memo not in self.memo:
            deals = open_deals(self.visible(Deal, DEAL_VIEW), self.stages.values())
            queryset, names = self._group_records(staged, deals.order_by())
            rows: Rows = defaultdict(lambda: {"n": 0, "total": Decimal("0")})
            for row in grouped(queryset, names, n=Count("*"), total=Sum("v_amount")):
                target = rows[self._key(row, names, staged)]
                target["n"] += row["n"]
                target["total"] += row["total"] or Decimal("0")
            self.memo[memo] = rows
        rows = self.memo[memo]
        if "stage" in plain.by:
            return rows
        drop = staged.by.index("stage")
        collapsed: Rows = defaultdict(lambda: {"n": 0, "total": Decimal("0")})
        for key, row in rows.items():
            target = collapsed[key[:drop] + key[drop + 1 :]]
            target["n"] += row["n"]
            target["total"] += row["total"]
        return collapsed

    def open_at(self, days: list[date], grouping: Grouping) -> tuple[dict[date, Rows], set[date]]:
        """The open pipeline recorded at the end of each of ``days`` (those with a snapshot), and which had one."""
        recorded = self.open_days(days)
        result: dict[date, Rows] = {day: defaultdict(lambda: {"n": 0, "total": Decimal("0")}) for day in recorded}
        if recorded:
            plain = grouping.without_interval()
            queryset = self.snapshots(Metric.DEALS_OPEN, DEAL_VIEW).filter(day__in=sorted(recorded))
            queryset, names = self._group_snapshot(plain, queryset)
            for row in grouped(queryset.order_by(), ["day", *names], n=Sum("count"), total=Sum("amount")):
                target = result[row["day"]][self._key(row, names, plain)]
                target["n"] += int(row["n"])
                target["total"] += row["total"] or Decimal("0")
        return result, recorded

    def open_series(self, grouping: Grouping) -> dict[date | None, Rows | None]:
        """The open pipeline at the end of the period (key ``None``) or of each bucket: now when that end is today
        or later, else the snapshot of that day, or None when no snapshot was taken that day."""
        period = grouping.period
        ends: dict[date | None, date] = {}
        if grouping.interval:
            for start in _bucket_starts(period, grouping.interval):
                ends[start] = min(bucket_end(start, grouping.interval), period.end)
        else:
            ends = {None: period.end}
        past = sorted({day for day in ends.values() if day < self.today})
        recorded, _days = self.open_at(past, grouping) if past else ({}, set())
        now = self.open_now(grouping) if any(day >= self.today for day in ends.values()) else None
        return {bucket: (now if day >= self.today else recorded.get(day)) for bucket, day in ends.items()}

    # --- cohorts of leads (created in the period) ---

    def _cohort(self, grouping: Grouping) -> tuple[QuerySet, list[str]]:
        period = grouping.period
        queryset = (
            self.visible(Lead, LEAD_VIEW)
            .filter(created_at__gte=period.start_at, created_at__lt=period.end_at)
            .annotate(d_day=TruncDate("created_at", tzinfo=self.tz), d_owner=F("owner_id"), d_key=F("source"))
            .annotate(d_status=F("status"))
            .order_by()
        )
        names, exprs = [], {}
        if grouping.interval:
            exprs["g_t"] = (
                F("d_day")
                if grouping.interval == Interval.DAY
                else Trunc("d_day", grouping.interval, output_field=DateField())
            )
            names.append("g_t")
        for index, dimension in enumerate(grouping.by):
            exprs[f"g{index}"] = F(
                "d_status" if dimension == "status" else DIMENSION_COLUMNS[fact_dimension(dimension)]
            )
            names.append(f"g{index}")
        for dimension, value in grouping.filters:
            column = "d_status" if dimension == "status" else DIMENSION_COLUMNS[fact_dimension(dimension)]
            queryset = queryset.filter(**{column: _internal(dimension, value)})
        return queryset.annotate(**exprs), names

    def cohort(self, grouping: Grouping) -> Rows:
        """Leads created in the period: ``n``, and how many are now qualified (or converted) and converted."""
        memo = ("cohort", grouping)
        if memo in self.memo:
            return self.memo[memo]
        queryset, names = self._cohort(grouping)
        qualified = Q(status__in=[LeadStatus.QUALIFIED, LeadStatus.CONVERTED])
        aggregated = grouped(
            queryset,
            names,
            n=Count("*"),
            qualified=Count("pk", filter=qualified),
            converted=Count("pk", filter=Q(status=LeadStatus.CONVERTED)),
        )
        rows: Rows = {self._key(row, names, grouping): row for row in aggregated}
        self.memo[memo] = rows
        return rows

    def first_touch(self, grouping: Grouping) -> Rows:
        """Leads created in the period and the time to their first activity: ``n``, ``touched``, ``median`` and
        ``average`` seconds over the touched ones."""
        memo = ("first-touch", grouping)
        if memo in self.memo:
            return self.memo[memo]
        queryset, names = self._cohort(grouping)
        first = Activity.objects.filter(lead_id=OuterRef("pk")).order_by("created_at").values("created_at")[:1]
        queryset = queryset.annotate(first_at=Subquery(first))
        found = sql_of(queryset.values(*names, "created_at", "first_at"))
        if found is None:  # no scope at all
            self.memo[memo] = {}
            return {}
        sql, params = found
        columns = ", ".join(f'f."{name}"' for name in names)
        seconds = "EXTRACT(EPOCH FROM f.first_at - f.created_at)"
        query = (
            f"SELECT {columns + ', ' if columns else ''}COUNT(*), COUNT(f.first_at), "
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {seconds}), AVG({seconds}) "
            f"FROM ({sql}) f {'GROUP BY ' + columns if columns else ''}"
        )
        rows: Rows = {}
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            for row in cursor.fetchall():
                head = dict(zip(names, row[: len(names)], strict=True))
                n, touched, median, average = row[len(names) :]
                if n:
                    rows[self._key(head, names, grouping)] = {
                        "n": n,
                        "touched": touched,
                        "median": float(median) if median is not None else None,
                        "average": float(average) if average is not None else None,
                    }
        self.memo[memo] = rows
        return rows

    # --- live states ---

    def no_next_step(self, grouping: Grouping) -> Rows:
        """Open deals with no activity still to do from now on (an uncompleted one due now or later)."""
        memo = ("no-next-step", grouping)
        if memo in self.memo:
            return self.memo[memo]
        upcoming = Activity.objects.filter(deal_id=OuterRef("pk"), completed_at=None, due_at__gte=self.now)
        queryset = open_deals(self.visible(Deal, DEAL_VIEW), self.stages.values()).filter(~Exists(upcoming)).order_by()
        queryset, names = self._group_records(grouping.without_interval(), queryset)
        aggregated = grouped(queryset, names, n=Count("*"), total=Sum("v_amount"))
        rows: Rows = {self._key(row, names, grouping.without_interval()): row for row in aggregated}
        self.memo[memo] = rows
        return rows

    def overdue_tasks(self, grouping: Grouping) -> Rows:
        memo = ("overdue", grouping)
        if memo in self.memo:
            return self.memo[memo]
        queryset = (
            self.visible(Activity, ACTIVITY_VIEW)
            .filter(kind=ActivityKind.TASK, completed_at=None, due_at__lt=self.now)
            .annotate(d_owner=F("owner_id"), d_key=F("kind"))
            .order_by()
        )
        queryset, names = self._group_records(grouping.without_interval(), queryset)
        aggregated = grouped(queryset, names, n=Count("*"))
        rows: Rows = {self._key(row, names, grouping.without_interval()): row for row in aggregated}
        self.memo[memo] = rows
        return rows


def sql_of(queryset: QuerySet) -> tuple[str, tuple] | None:
    """The SQL of a queryset to compose into a larger query, or None when it selects nothing (``.none()``: a caller
    with no scope)."""
    try:
        return queryset.query.sql_with_params()
    except EmptyResultSet:
        return None


def grouped(queryset: QuerySet, names: list[str], **aggregates) -> list[dict[str, Any]]:
    """``GROUP BY names`` with ``aggregates``; one row over everything when there are no names (``values()`` without
    names would group by every column)."""
    if names:
        return list(queryset.values(*names).annotate(**aggregates))
    return [queryset.aggregate(**aggregates)]


def _bucket_starts(period: Period, interval: str) -> list[date]:
    return list(buckets(period, interval))
