"""The measures: every figure analytics answers, each defined once over the engine's sources. The reports, the time
series and the aggregate endpoint all evaluate these, so a report's figure and the same measure asked of
``GET /analytics/aggregate/`` are one computation.

A ratio, an average or a median with nothing to divide by is ``None`` (no closed deal: no win rate), never a
division error and never a misleading 0; counts and amounts are 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .choices import Metric
from .engine import Engine, Grouping, Rows

CENT = Decimal("0.01")
DAY_SECONDS = 86400

UNKNOWN = ("__unknown__",)  # key under which a compute function lists the buckets it cannot tell
DEAL_DIMENSIONS = ("owner", "pipeline")


def money(value: Decimal | int | float | None) -> Decimal:
    return Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def ratio(numerator, denominator) -> float | None:
    if not denominator:
        return None
    return round(float(numerator) / float(denominator), 4)


@dataclass(frozen=True)
class Measure:
    name: str
    description: str
    unit: str  # count, money, ratio, days, hours, money_per_day
    record: str  # deals, leads, activities
    kind: str  # flow, state, cohort, live
    dimensions: tuple[str, ...]
    compute: Callable[[Engine, Grouping], dict[tuple, Any]]
    time: bool = True
    additive: bool = True  # a sum (a count, an amount): an empty group is 0, not unknown

    @property
    def zero(self) -> Any:
        """The value of an empty group: 0 for counts and amounts, None for ratios, averages and medians."""
        if not self.additive:
            return None
        if self.unit == "count":
            return 0
        if self.unit == "money":
            return money(0)
        return None

    def evaluate(self, engine: Engine, grouping: Grouping) -> tuple[dict[tuple, Any], set]:
        """``({group key: value}, buckets whose value is unknown)``: ``None`` in the unknown set means the whole
        period (the open pipeline at the end of a past day that has no snapshot)."""
        values = dict(self.compute(engine, grouping))
        unknown = values.pop(UNKNOWN, set())
        return values, unknown


def _field(rows: Rows, name: str, convert=lambda value: value) -> dict[tuple, Any]:
    return {key: convert(row[name]) for key, row in rows.items()}


def _flow_field(metric: str, name: str, convert=lambda value: value):
    def compute(engine: Engine, grouping: Grouping):
        return _field(engine.flow(metric, grouping), name, convert)

    return compute


def _win_rate(by_value: bool):
    field = "total" if by_value else "n"

    def compute(engine: Engine, grouping: Grouping):
        won, lost = engine.flow(Metric.DEALS_WON, grouping), engine.flow(Metric.DEALS_LOST, grouping)
        result = {}
        for key in set(won) | set(lost):
            w = won[key][field] if key in won else 0
            lost_value = lost[key][field] if key in lost else 0
            result[key] = ratio(w, w + lost_value)
        return result

    return compute


def _average_deal_size(engine: Engine, grouping: Grouping):
    return {
        key: money(row["total"] / row["n"]) if row["n"] else None
        for key, row in engine.flow(Metric.DEALS_WON, grouping).items()
    }


def _sales_cycle(engine: Engine, grouping: Grouping):
    rows = engine.flow(Metric.DEALS_WON, grouping)
    return {key: round(row["secs"] / row["n"] / DAY_SECONDS, 2) if row["n"] else None for key, row in rows.items()}


def _median_days_in_stage(engine: Engine, grouping: Grouping):
    return {
        key: round(value / DAY_SECONDS, 2) for key, value in engine.median_seconds(Metric.STAGE_EXITS, grouping).items()
    }


def _average_days_in_stage(engine: Engine, grouping: Grouping):
    rows = engine.flow(Metric.STAGE_EXITS, grouping)
    return {key: round(row["secs"] / row["n"] / DAY_SECONDS, 2) if row["n"] else None for key, row in rows.items()}


def _open(field: str, weighted: bool = False):
    def compute(engine: Engine, grouping: Grouping):
        inner = grouping.with_by("stage") if weighted else grouping
        stage_at = inner.by.index("stage") if weighted else None
        drop = stage_at if weighted and "stage" not in grouping.by else None
        result: dict[Any, Any] = {}
        unknown = set()
        for bucket, rows in engine.open_series(inner).items():
            if rows is None:  # no snapshot at the end of that day: unknown, not zero
                unknown.add(bucket)
                continue
            for key, row in rows.items():
                if stage_at is not None:
                    stage = engine.stages.get(key[stage_at])
                    value = row["total"] * Decimal(stage.probability if stage else 0) / 100
                else:
                    value = row[field]
                if drop is not None:
                    key = key[:drop] + key[drop + 1 :]
                full = key if bucket is None else (bucket, *key)
                result[full] = result.get(full, 0) + value
        values = {key: money(value) if weighted or field == "total" else value for key, value in result.items()}
        if unknown:
            values[UNKNOWN] = unknown
        return values

    return compute


def _velocity(engine: Engine, grouping: Grouping):
    """Pipeline velocity: open deals × win rate × average deal size ÷ sales cycle days: amount per day."""
    opened = dict(MEASURES["open_deals"].compute(engine, grouping))
    unknown = opened.pop(UNKNOWN, set())
    rate = MEASURES["win_rate"].compute(engine, grouping)
    size = MEASURES["average_deal_size"].compute(engine, grouping)
    cycle = MEASURES["sales_cycle_days"].compute(engine, grouping)
    result: dict[Any, Any] = {}
    for key in set(opened) | set(rate):
        parts = [opened.get(key, 0), rate.get(key), size.get(key), cycle.get(key)]
        if None in parts or not parts[3]:
            result[key] = None
        else:
            result[key] = money(Decimal(parts[0]) * Decimal(str(parts[1])) * parts[2] / Decimal(str(parts[3])))
    if unknown:
        result[UNKNOWN] = unknown
    return result


def _cohort(field: str, of: str | None = None):
    def compute(engine: Engine, grouping: Grouping):
        rows = engine.cohort(grouping)
        if of is None:
            return {key: row[field] for key, row in rows.items()}
        return {key: ratio(row[field], row[of]) for key, row in rows.items()}

    return compute


def _first_touch(field: str):
    def compute(engine: Engine, grouping: Grouping):
        rows = engine.first_touch(grouping)
        if field == "untouched":
            return {key: row["n"] - row["touched"] for key, row in rows.items()}
        return {key: round(row[field] / 3600, 2) if row[field] is not None else None for key, row in rows.items()}

    return compute


def _live(source: str, field: str, convert=lambda value: value):
    def compute(engine: Engine, grouping: Grouping):
        return {key: convert(row[field]) for key, row in getattr(engine, source)(grouping).items()}

    return compute


def _int(value) -> int:
    return int(value or 0)


_MEASURES = [
    # deals: flows
    Measure(
        "deals_created",
        "Deals created",
        "count",
        "deals",
        "flow",
        DEAL_DIMENSIONS,
        _flow_field(Metric.DEALS_CREATED, "n"),
    ),
    Measure(
        "deals_created_value",
        "Amount of the deals created",
        "money",
        "deals",
        "flow",
        DEAL_DIMENSIONS,
        _flow_field(Metric.DEALS_CREATED, "total", money),
    ),
    Measure(
        "deals_won",
        "Deals won",
        "count",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "source"),
        _flow_field(Metric.DEALS_WON, "n"),
    ),
    Measure(
        "won_value",
        "Amount won (by source: the source of the lead the deal was converted from)",
        "money",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "source"),
        _flow_field(Metric.DEALS_WON, "total", money),
    ),
    Measure(
        "new_business_value",
        "Amount won from deals created in the same month (business the pipeline did not show)",
        "money",
        "deals",
        "flow",
        DEAL_DIMENSIONS,
        _flow_field(Metric.DEALS_WON_FRESH, "total", money),
    ),
    Measure("deals_lost", "Deals lost", "count", "deals", "flow", DEAL_DIMENSIONS, _flow_field(Metric.DEALS_LOST, "n")),
    Measure(
        "lost_value",
        "Amount lost",
        "money",
        "deals",
        "flow",
        DEAL_DIMENSIONS,
        _flow_field(Metric.DEALS_LOST, "total", money),
    ),
    Measure(
        "win_rate",
        "Deals won ÷ deals closed (won or lost) in the period",
        "ratio",
        "deals",
        "flow",
        DEAL_DIMENSIONS,
        _win_rate(False),
    ),
    Measure(
        "win_rate_by_value",
        "Amount won ÷ amount closed in the period",
        "ratio",
        "deals",
        "flow",
        DEAL_DIMENSIONS,
        _win_rate(True),
    ),
    Measure(
        "average_deal_size",
        "Average amount of the deals won",
        "money",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "source"),
        _average_deal_size,
        additive=False,
    ),
    Measure(
        "sales_cycle_days",
        "Average days from creation to won, of the deals won",
        "days",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "source"),
        _sales_cycle,
    ),
    Measure(
        "deals_closed",
        "Deals closed, by the furthest open stage they reached (`stage`) and `outcome`",
        "count",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "stage", "outcome"),
        _flow_field(Metric.DEALS_CLOSED, "n"),
    ),
    Measure(
        "stage_exits",
        "Deals leaving an open stage (`stage`: the stage left)",
        "count",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "stage"),
        _flow_field(Metric.STAGE_EXITS, "n"),
    ),
    Measure(
        "median_days_in_stage",
        "Median days deals spent in a stage before leaving it",
        "days",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "stage"),
        _median_days_in_stage,
    ),
    Measure(
        "average_days_in_stage",
        "Average days deals spent in a stage before leaving it",
        "days",
        "deals",
        "flow",
        (*DEAL_DIMENSIONS, "stage"),
        _average_days_in_stage,
    ),
    # deals: the open pipeline, at the end of the period (or of each bucket)
    Measure(
        "open_deals",
        "Open deals at the end of the period (now when it ends today or later)",
        "count",
        "deals",
        "state",
        (*DEAL_DIMENSIONS, "stage"),
        _open("n"),
    ),
    Measure(
        "open_value",
        "Amount of the open deals at the end of the period",
        "money",
        "deals",
        "state",
        (*DEAL_DIMENSIONS, "stage"),
        _open("total"),
    ),
    Measure(
        "weighted_value",
        "Open amount × each stage's configured probability, at the end of the period",
        "money",
        "deals",
        "state",
        (*DEAL_DIMENSIONS, "stage"),
        _open("total", weighted=True),
    ),
    Measure(
        "pipeline_velocity",
        "Open deals × win rate × average deal size ÷ sales cycle days: amount per day",
        "money_per_day",
        "deals",
        "state",
        DEAL_DIMENSIONS,
        _velocity,
    ),
    Measure(
        "deals_without_next_step",
        "Open deals with no activity still to do from now on",
        "count",
        "deals",
        "live",
        (*DEAL_DIMENSIONS, "stage"),
        _live("no_next_step", "n"),
        time=False,
    ),
    # leads
    Measure(
        "leads_created",
        "Leads created",
        "count",
        "leads",
        "flow",
        ("owner", "source"),
        _flow_field(Metric.LEADS_CREATED, "n"),
    ),
    Measure(
        "leads",
        "Leads created in the period, by their status now",
        "count",
        "leads",
        "cohort",
        ("owner", "source", "status"),
        _cohort("n"),
    ),
    Measure(
        "qualification_rate",
        "Share of the leads created in the period now qualified or converted",
        "ratio",
        "leads",
        "cohort",
        ("owner", "source"),
        _cohort("qualified", of="n"),
    ),
    Measure(
        "conversion_rate",
        "Share of the leads created in the period now converted",
        "ratio",
        "leads",
        "cohort",
        ("owner", "source"),
        _cohort("converted", of="n"),
    ),
    Measure(
        "median_hours_to_first_activity",
        "Median hours from a lead's creation to its first activity (leads created in the period that have one)",
        "hours",
        "leads",
        "cohort",
        ("owner", "source"),
        _first_touch("median"),
    ),
    Measure(
        "average_hours_to_first_activity",
        "Average hours from a lead's creation to its first activity",
        "hours",
        "leads",
        "cohort",
        ("owner", "source"),
        _first_touch("average"),
    ),
    Measure(
        "untouched_leads",
        "Leads created in the period with no activity yet",
        "count",
        "leads",
        "cohort",
        ("owner", "source"),
        _first_touch("untouched"),
    ),
    # activities
    Measure(
        "activities",
        "Activities logged (notes, calls, e-mails, meetings, tasks)",
        "count",
        "activities",
        "flow",
        ("owner", "kind"),
        _flow_field(Metric.ACTIVITIES_CREATED, "n"),
    ),
    Measure(
        "overdue_tasks",
        "Open tasks whose due date has passed",
        "count",
        "activities",
        "live",
        ("owner",),
        _live("overdue_tasks", "n", _int),
        time=False,
    ),
]
MEASURES: dict[str, Measure] = {measure.name: measure for measure in _MEASURES}

DIMENSIONS = ("owner", "pipeline", "stage", "source", "kind", "status", "outcome")
