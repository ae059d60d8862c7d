"""Reads of analytics: the aggregate (measure × group-by × period × filters), time series, and the pipeline, lead
and activity reports, which are a fixed set of aggregates. Every read takes the caller's access as ``actor`` and
sees only what its record scopes reach; results are cached per organization and scope (``analytics.cache``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Value
from django.db.models.functions import Concat
from django.utils import timezone

from crm.choices import ActivityKind, LeadSource, LeadStatus
from identity.models import User
from pipelines.choices import StageKind
from rbac.actor import Actor

from . import cache
from .choices import Outcome
from .engine import NONE_KEY, Engine, Grouping
from .measures import MEASURES, Measure, money, ratio
from .periods import Period, buckets

TIME_DIMENSIONS = ("day", "week", "month")
MAX_GROUPS = 10_000


@dataclass(frozen=True)
class AggregateQuery:
    measure: str
    period: Period
    group_by: tuple[str, ...] = ()
    interval: str | None = None
    filters: tuple[tuple[str, Any], ...] = ()

    def grouping(self) -> Grouping:
        return Grouping(self.period, self.group_by, self.interval, self.filters)

    def params(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "period": self.period.key(),
            "group_by": list(self.group_by),
            "interval": self.interval,
            "filters": [list(item) for item in self.filters],
        }


class TooManyGroups(Exception):
    pass


def _sort_key(key: tuple) -> tuple:
    return tuple((value is None, value if value is not None else 0) for value in key)


def evaluate(engine: Engine, measure: Measure, grouping: Grouping) -> list[tuple[tuple, Any]]:
    """``[(group key, value)]`` in key order. A time series without other dimensions has every bucket of the period,
    empty ones at the measure's zero; a bucket whose value is unknown (no snapshot that day) is None."""
    values, unknown = measure.evaluate(engine, grouping)
    keys: list[tuple]
    if grouping.interval and not grouping.by:
        keys = [(bucket,) for bucket in buckets(grouping.period, grouping.interval)]
    elif not grouping.by and not grouping.interval:
        keys = [()]
    else:
        keys = sorted(values, key=_sort_key)
    if len(keys) > MAX_GROUPS:
        raise TooManyGroups()
    rows = []
    for key in keys:
        if None in unknown or (grouping.interval and key[0] in unknown):
            rows.append((key, None))
        else:
            rows.append((key, values.get(key, measure.zero)))
    return rows


def value_of(engine: Engine, measure: str, grouping: Grouping) -> Any:
    return evaluate(engine, MEASURES[measure], grouping)[0][1]


def figure(engine: Engine, measure: str, grouping: Grouping) -> dict[str, Any]:
    """A figure of the period with the previous period's beside it, and the relative change."""
    current = value_of(engine, measure, grouping)
    previous = value_of(engine, measure, grouping.with_period(grouping.period.previous()))
    change = None
    if current is not None and previous:
        change = round((float(current) - float(previous)) / abs(float(previous)), 4)
    return {"value": current, "previous": previous, "change": change}


def owner_labels(ids) -> dict[int, dict[str, Any]]:
    """``{id: {id, name, email}}`` of the owners named, in one query."""
    ids = sorted({pk for pk in ids if pk is not None})
    if not ids:
        return {}
    rows = User.objects.filter(pk__in=ids).annotate(full=Concat("first_name", Value(" "), "last_name"))
    return {
        row["pk"]: {"id": row["pk"], "name": row["full"].strip() or row["email"], "email": row["email"]}
        for row in rows.values("pk", "full", "email")
    }


def _labels(engine: Engine, query: AggregateQuery, rows) -> list[dict[str, Any]]:
    owners = owner_labels(
        key[query.group_by.index("owner") + (1 if query.interval else 0)]
        for key, _value in rows
        if "owner" in query.group_by
    )
    stages = engine.stages if ("stage" in query.group_by or "pipeline" in query.group_by) else {}
    pipelines = {stage.pipeline_id: stage.pipeline.name for stage in stages.values()}
    result = []
    for key, value in rows:
        group: dict[str, Any] = {}
        labels: dict[str, Any] = {}
        values = list(key)
        if query.interval:
            group[query.interval] = values.pop(0)
        for dimension, item in zip(query.group_by, values, strict=True):
            group[dimension] = item
            if dimension == "owner" and item in owners:
                labels["owner"] = owners[item]["name"]
            elif dimension == "stage" and item in stages:
                labels["stage"] = stages[item].name
            elif dimension == "pipeline" and item in pipelines:
                labels["pipeline"] = pipelines[item]
        result.append({"group": group, "labels": labels, "value": value})
    return result


def aggregate(*, actor: Actor, query: AggregateQuery, tz: ZoneInfo, now: datetime | None = None) -> list[dict]:
    """Rows ``{group, labels, value}`` of one measure over the period, grouped and filtered as asked."""
    now = now or timezone.now()

    def compute() -> list[dict]:
        engine = Engine(actor, tz=tz, now=now)
        rows = evaluate(engine, MEASURES[query.measure], query.grouping())
        return _labels(engine, query, rows)

    return cache.cached(actor, "aggregate", {**query.params(), "today": _today(now, tz)}, compute)


def _today(now: datetime, tz: ZoneInfo) -> str:
    return now.astimezone(tz).date().isoformat()


# --- reports ---


def _filters(**values: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((name, value) for name, value in values.items() if value is not None)


def _by(engine: Engine, measure: str, grouping: Grouping, dimension: str) -> dict[Any, Any]:
    return {key[0]: value for key, value in evaluate(engine, MEASURES[measure], grouping.with_by(dimension))}


def _every(choices, found: dict[Any, Any], zero=0, *, blank: bool = True) -> dict[str, Any]:
    """Every choice (and the blank ``none`` key) with its value, 0 included, as the CRM's statistics list them."""
    keys = [*(value for value, _label in choices), *([NONE_KEY] if blank else [])]
    return {key: found.get(key, zero) for key in keys}


def pipeline_report(
    *,
    actor: Actor,
    period: Period,
    pipeline_id: int | None = None,
    owner_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or timezone.now()
    params = {"period": period.key(), "pipeline": pipeline_id, "owner": owner_id, "today": _today(now, period.tz)}
    return cache.cached(actor, "pipeline", params, lambda: _pipeline_report(actor, period, pipeline_id, owner_id, now))


def _pipeline_report(actor, period: Period, pipeline_id, owner_id, now) -> dict[str, Any]:
    engine = Engine(actor, tz=period.tz, now=now)
    grouping = Grouping(period, filters=_filters(pipeline=pipeline_id, owner=owner_id))
    names = [
        "open_deals",
        "open_value",
        "weighted_value",
        "deals_won",
        "deals_lost",
        "won_value",
        "lost_value",
        "win_rate",
        "win_rate_by_value",
        "average_deal_size",
        "sales_cycle_days",
        "pipeline_velocity",
    ]
    figures = {name: figure(engine, name, grouping) for name in names}
    funnel_pipeline = _funnel_pipeline(engine, pipeline_id)
    currency = funnel_pipeline.currency if funnel_pipeline is not None else None
    return {
        **_period_body(period),
        "pipeline": pipeline_id,
        "owner": owner_id,
        "currency": currency,
        **figures,
        "funnel": funnel(engine, period, funnel_pipeline, owner_id) if funnel_pipeline is not None else None,
    }


def _funnel_pipeline(engine: Engine, pipeline_id: int | None):
    if pipeline_id is not None:
        for stage in engine.stages.values():
            if stage.pipeline_id == pipeline_id:
                return stage.pipeline
        return None
    return engine.default_pipeline


def _period_body(period: Period) -> dict[str, Any]:
    previous = period.previous()
    return {
        "period": {
            "start": period.start,
            "end": period.end,
            "previous_start": previous.start,
            "previous_end": previous.end,
            "time_zone": period.tz.key,
        }
    }


def reach(engine: Engine, grouping: Grouping, open_stages: list) -> tuple[dict[int, int], int]:
    """``({open stage id: deals closed in the period that reached it}, deals won)``: a won deal reached every open
    stage; a lost one every stage up to the furthest it entered (by position)."""
    closed = evaluate(engine, MEASURES["deals_closed"], grouping.with_by("stage", "outcome"))
    position = {stage.pk: stage.position for stage in open_stages}
    won = sum(value for (_stage, outcome), value in closed if outcome == Outcome.WON)
    lost_at: dict[int, int] = {}
    for (stage_id, outcome), value in closed:
        if outcome == Outcome.LOST and stage_id in position:
            lost_at[stage_id] = lost_at.get(stage_id, 0) + value
    reached = {
        stage.pk: won + sum(n for stage_id, n in lost_at.items() if position[stage_id] >= stage.position)
        for stage in open_stages
    }
    return reached, won


def open_stages_of(engine: Engine, pipeline) -> list:
    return [s for s in engine.stages.values() if s.pipeline_id == pipeline.pk and s.kind == StageKind.OPEN]


def funnel(engine: Engine, period: Period, pipeline, owner_id: int | None) -> dict[str, Any]:
    """Stage-to-stage conversion of the deals closed in the period: how many reached each open stage, how many of
    them went further (the next stage, or won after the last), the drop-off, and the median days deals spent in the
    stage before leaving it (every exit in the period)."""
    grouping = Grouping(period, filters=_filters(pipeline=pipeline.pk, owner=owner_id))
    stages = open_stages_of(engine, pipeline)
    reached, won = reach(engine, grouping, stages)
    medians = _by(engine, "median_days_in_stage", grouping, "stage")
    steps = []
    for index, stage in enumerate(stages):
        further = reached[stages[index + 1].pk] if index + 1 < len(stages) else won
        steps.append(
            {
                "stage": {"id": stage.pk, "name": stage.name, "position": stage.position},
                "reached": reached[stage.pk],
                "advanced": further,
                "conversion_rate": ratio(further, reached[stage.pk]),
                "drop_off": reached[stage.pk] - further,
                "median_days_in_stage": medians.get(stage.pk),
            }
        )
    return {"pipeline": pipeline.pk, "won": won, "stages": steps}


def leads_report(
    *, actor: Actor, period: Period, owner_id: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    now = now or timezone.now()
    params = {"period": period.key(), "owner": owner_id, "today": _today(now, period.tz)}
    return cache.cached(actor, "leads", params, lambda: _leads_report(actor, period, owner_id, now))


def _leads_report(actor, period: Period, owner_id, now) -> dict[str, Any]:
    engine = Engine(actor, tz=period.tz, now=now)
    grouping = Grouping(period, filters=_filters(owner=owner_id))
    previous = grouping.with_period(period.previous())
    created = _every(LeadSource.choices, _by(engine, "leads_created", grouping, "source"))
    created_before = _every(LeadSource.choices, _by(engine, "leads_created", previous, "source"))
    statuses = _every(LeadStatus.choices, _by(engine, "leads", grouping, "status"), blank=False)
    won_value = _every(LeadSource.choices, _by(engine, "won_value", grouping, "source"), money(0))
    won_value_before = _every(LeadSource.choices, _by(engine, "won_value", previous, "source"), money(0))
    won_count = _every(LeadSource.choices, _by(engine, "deals_won", grouping, "source"))
    return {
        **_period_body(period),
        "owner": owner_id,
        "created": figure(engine, "leads_created", grouping),
        "by_source": [
            {"source": source, "count": count, "previous": created_before[source]} for source, count in created.items()
        ],
        "by_status": [{"status": status, "count": count} for status, count in statuses.items()],
        "qualification_rate": figure(engine, "qualification_rate", grouping),
        "conversion_rate": figure(engine, "conversion_rate", grouping),
        "median_hours_to_first_activity": figure(engine, "median_hours_to_first_activity", grouping),
        "average_hours_to_first_activity": figure(engine, "average_hours_to_first_activity", grouping),
        "untouched": figure(engine, "untouched_leads", grouping),
        "attribution": [
            {
                "source": source,
                "deals_won": won_count[source],
                "won_value": value,
                "previous_won_value": won_value_before[source],
            }
            for source, value in won_value.items()
        ],
    }


def activity_report(
    *,
    actor: Actor,
    period: Period,
    owner_id: int | None = None,
    pipeline_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or timezone.now()
    params = {"period": period.key(), "owner": owner_id, "pipeline": pipeline_id, "today": _today(now, period.tz)}
    return cache.cached(actor, "activity", params, lambda: _activity_report(actor, period, owner_id, pipeline_id, now))


def _activity_report(actor, period: Period, owner_id, pipeline_id, now) -> dict[str, Any]:
    engine = Engine(actor, tz=period.tz, now=now)
    grouping = Grouping(period, filters=_filters(owner=owner_id))
    previous = grouping.with_period(period.previous())
    kinds = _every(ActivityKind.choices, _by(engine, "activities", grouping, "kind"), blank=False)
    kinds_before = _every(ActivityKind.choices, _by(engine, "activities", previous, "kind"), blank=False)
    per_owner = evaluate(engine, MEASURES["activities"], grouping.with_by("owner", "kind"))
    overdue = evaluate(engine, MEASURES["overdue_tasks"], grouping.with_by("owner"))
    deal_grouping = Grouping(period, filters=_filters(owner=owner_id, pipeline=pipeline_id))
    stalled = evaluate(engine, MEASURES["deals_without_next_step"], deal_grouping.with_by("owner"))
    open_deals = value_of(
        engine, "open_deals", Grouping(Period(engine.today, engine.today, period.tz), filters=deal_grouping.filters)
    )
    labels = owner_labels(
        [key[0] for key, _ in per_owner] + [key[0] for key, _ in overdue] + [key[0] for key, _ in stalled]
    )

    owners: dict[Any, dict[str, Any]] = {}
    for (owner, kind), count in per_owner:
        entry = owners.setdefault(owner, {"owner": labels.get(owner), "total": 0, "by_kind": dict.fromkeys(kinds, 0)})
        entry["total"] += count
        entry["by_kind"][kind] = entry["by_kind"].get(kind, 0) + count
    return {
        **_period_body(period),
        "owner": owner_id,
        "total": figure(engine, "activities", grouping),
        "by_kind": [{"kind": kind, "count": count, "previous": kinds_before[kind]} for kind, count in kinds.items()],
        "by_owner": sorted(owners.values(), key=lambda entry: -entry["total"]),
        "overdue_tasks": {
            "count": sum(count for _key, count in overdue),
            "by_owner": [{"owner": labels.get(owner), "count": count} for (owner,), count in overdue],
        },
        "deals_without_next_step": {
            "count": sum(count for _key, count in stalled),
            "open_deals": open_deals,
            "by_owner": [{"owner": labels.get(owner), "count": count} for (owner,), count in stalled],
        },
    }


def measure_catalogue() -> list[dict[str, Any]]:
    return [
        {
            "name": measure.name,
            "description": measure.description,
            "unit": measure.unit,
            "record": measure.record,
            "kind": measure.kind,
            "dimensions": list(measure.dimensions),
            "intervals": list(TIME_DIMENSIONS) if measure.time else [],
        }
        for measure in MEASURES.values()
    ]
