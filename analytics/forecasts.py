"""Revenue forecast with intervals, calibrated stage probabilities, weekly forecast snapshots and their accuracy.

**Stage probabilities.** The chance that an open deal in stage *s* is won is the share of won deals among the deals
closed in the last ``CALIBRATION_DAYS`` that reached *s* (``analytics.selectors.reach``), once at least
``CALIBRATION_MIN_DEALS`` such deals closed; with fewer it is the stage's configured probability. Computed over the
deals the caller may see, like every figure.

**A month's forecast** = what is already won in it (the current month) + the open pipeline expected to close in it
+ the run-rate of business that is not in the pipeline yet:

- pipeline: each open deal is won with its stage's probability *p*, independently: mean Σ p·a, variance
  Σ p(1−p)·a² (deals whose expected close date has passed count in the current month; deals without one are reported
  apart, as ``unscheduled``);
- run-rate: the amount won each month from deals created that same month, over the last ``RUN_RATE_MONTHS``
  complete months since the first deal; mean x̄ and prediction interval x̄ ± t(n−1) · s · √(1 + 1/n) (Student's t:
  a small sample's mean and spread are themselves estimates); with fewer than 3 months, s is taken as x̄. The current
  month gets the share of its days still to come.
- the two are independent: interval half-widths add in quadrature; the lower bound never goes below what is won.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from pipelines.choices import DealStatus, StageKind
from pipelines.models import Deal
from rbac.actor import Actor, require_actor

from . import cache
from .choices import Interval, Outcome
from .engine import Engine, Grouping
from .facts import DEAL_VIEW
from .measures import MEASURES, money
from .models import ForecastSnapshot
from .periods import Period, add_months, month_end, month_start
from .selectors import evaluate, owner_labels

CALIBRATION_MIN_DEALS = 30
CALIBRATION_DAYS = 365
RUN_RATE_MONTHS = 12
LEVELS = (0.80, 0.95)
SNAPSHOT_MONTHS = 3


# --- the numbers ---


@dataclass(frozen=True)
class RunRate:
    mean: float
    spread: float  # standard deviation of one month's value
    months: int

    @classmethod
    def of(cls, history: list[float]) -> RunRate:
        import numpy as np

        values = np.asarray(history, dtype=float)
        if values.size == 0:
            return cls(0.0, 0.0, 0)
        mean = max(float(values.mean()), 0.0)
        if values.size < 3:
            return cls(mean, mean, int(values.size))
        return cls(mean, float(values.std(ddof=1)), int(values.size))

    def half_width(self, level: float) -> float:
        from scipy import stats

        if self.months < 3:
            return float(stats.norm.ppf(0.5 + level / 2)) * self.spread
        quantile = float(stats.t.ppf(0.5 + level / 2, self.months - 1))
        return quantile * self.spread * math.sqrt(1 + 1 / self.months)


def month_forecast(
    *, committed: float, pipeline: list[tuple[float, float, float]], run_rate: RunRate, share: float = 1.0
) -> dict[str, Any]:
    """``pipeline``: ``(probability, Σ amount, Σ amount²)`` per stage. ``share``: the part of the month still to
    come (1 for a future month)."""
    from scipy import stats

    mean_pipeline = sum(p * s1 for p, s1, _s2 in pipeline)
    variance = sum(p * (1 - p) * s2 for p, _s1, s2 in pipeline)
    mean_run = run_rate.mean * share
    expected = committed + mean_pipeline + mean_run
    result = {
        "expected": money(expected),
        "committed": money(committed),
        "pipeline": money(mean_pipeline),
        "run_rate": money(mean_run),
    }
    for level in LEVELS:
        z = float(stats.norm.ppf(0.5 + level / 2))
        half = math.hypot(z * math.sqrt(variance), run_rate.half_width(level) * share)
        suffix = round(level * 100)
        result[f"low_{suffix}"] = money(max(committed, expected - half))
        result[f"high_{suffix}"] = money(expected + half)
    return result


# --- stage probabilities ---


def _calibration_grouping(engine: Engine, filters, by: tuple[str, ...] = ()) -> Grouping:
    period = Period(engine.today - timedelta(days=CALIBRATION_DAYS - 1), engine.today, engine.tz)
    return Grouping(period, by=(*by, "pipeline", "stage", "outcome"), filters=filters)


def probabilities_by_group(engine: Engine, filters, by: tuple[str, ...] = ()) -> dict[tuple, dict[int, dict]]:
    """``{group: {open stage id: {configured, calibrated, closed_deals, won, used, source}}}`` (the group is ``()``
    or ``(owner,)``), from one query over the deals closed in the last ``CALIBRATION_DAYS``."""
    closed = evaluate(engine, MEASURES["deals_closed"], _calibration_grouping(engine, filters, by))
    width = len(by)
    won: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    lost_at: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for key, count in closed:
        group, (pipeline_id, stage_id, outcome) = key[:width], key[width:]
        (won if outcome == Outcome.WON else lost_at)[group][pipeline_id if outcome == Outcome.WON else stage_id] += (
            count
        )
    open_stages = [stage for stage in engine.stages.values() if stage.kind == StageKind.OPEN]
    groups = set(won) | set(lost_at) | {()}
    if by:
        groups.discard(())
    result: dict[tuple, dict[int, dict]] = {}
    for group in groups:
        table = {}
        for stage in open_stages:
            wins = won[group].get(stage.pipeline_id, 0)
            reached = wins + sum(
                count
                for stage_id, count in lost_at[group].items()
                if stage_id in engine.stages
                and engine.stages[stage_id].pipeline_id == stage.pipeline_id
                and engine.stages[stage_id].position >= stage.position
            )
            configured = stage.probability / 100
            calibrated = round(wins / reached, 4) if reached else None
            enough = reached >= CALIBRATION_MIN_DEALS
            table[stage.pk] = {
                "configured": configured,
                "calibrated": calibrated,
                "closed_deals": reached,
                "won": wins,
                "used": calibrated if enough else configured,
                "basis": "calibrated" if enough else "configured",
            }
        result[group] = table
    return result


# --- the forecast ---


def _open_pipeline(engine: Engine, filters, by_owner: bool) -> dict[tuple, list[dict]]:
    """Open deals per group, close month and stage: count, Σ amount, Σ amount². One query per engine: grouped by
    owner, and summed over owners here for the organization's total."""
    memo = ("open-pipeline", filters)
    if memo not in engine.memo:
        deals = engine.visible(Deal, DEAL_VIEW).filter(status=DealStatus.OPEN)
        for name, value in filters:
            deals = deals.filter(**{f"{name}_id": value})
        engine.memo[memo] = list(
            deals.order_by()
            .annotate(month=TruncMonth("expected_close_date"))
            .values("owner_id", "month", "stage_id")
            .annotate(n=Count("pk"), s1=Sum("amount"), s2=Sum(F("amount") * F("amount")))
        )
    grouped: dict[tuple, dict[tuple, dict]] = defaultdict(dict)
    for row in engine.memo[memo]:
        group = (row["owner_id"],) if by_owner else ()
        cell = grouped[group].setdefault((row["month"], row["stage_id"]), {**row, "n": 0, "s1": 0, "s2": 0})
        cell["n"] += row["n"]
        cell["s1"] += row["s1"] or 0
        cell["s2"] += row["s2"] or 0
    return {group: list(cells.values()) for group, cells in grouped.items()}


def _monthly(
    engine: Engine, metric_measure: str, period: Period, filters, by_owner: bool
) -> dict[tuple, dict[date, Any]]:
    grouping = Grouping(period, by=("owner",) if by_owner else (), interval=Interval.MONTH, filters=filters)
    values, _unknown = MEASURES[metric_measure].evaluate(engine, grouping)
    result: dict[tuple, dict[date, Any]] = defaultdict(dict)
    for key, value in values.items():
        result[tuple(key[1:])][key[0]] = value
    return result


def forecast_groups(engine: Engine, *, months: int, filters, by_owner: bool) -> dict[tuple, dict[str, Any]]:
    """The forecast of the next ``months`` months (the current one first) per group: ``()`` for everything the
    engine sees, or ``(owner id,)`` per owner."""
    today = engine.today
    first = month_start(today)
    horizon = [add_months(first, index) for index in range(months)]
    last_day = month_end(horizon[-1])
    by = ("owner",) if by_owner else ()
    probabilities = probabilities_by_group(engine, filters, by)
    pipeline = _open_pipeline(engine, filters, by_owner)
    history_period = Period(add_months(first, -RUN_RATE_MONTHS), first - timedelta(days=1), engine.tz)
    fresh = _monthly(engine, "new_business_value", history_period, filters, by_owner)
    created = _monthly(engine, "deals_created", history_period, filters, by_owner)
    won_now = _monthly(engine, "won_value", Period(first, today, engine.tz), filters, by_owner)
    share = ((month_end(today) - today).days + 1) / month_end(today).day

    groups = set(pipeline) | set(fresh) | set(won_now) | ({()} if not by_owner else set())
    results = {}
    for group in groups:
        table = probabilities.get(group) or probabilities_by_group_fallback(engine)
        started = sorted(month for month, count in created.get(group, {}).items() if count)
        history_months = [add_months(history_period.start, index) for index in range(RUN_RATE_MONTHS)]
        if started:
            history_months = [month for month in history_months if month >= started[0]]
        else:
            history_months = []
        run_rate = RunRate.of([float(fresh.get(group, {}).get(month, 0)) for month in history_months])
        per_month: dict[date, list[tuple[float, float, float]]] = defaultdict(list)
        counts: dict[date, int] = defaultdict(int)
        apart: dict[str, dict[str, Any]] = {
            "unscheduled": {"open_deals": 0, "open_value": Decimal(0), "expected": 0.0},
            "later": {"open_deals": 0, "open_value": Decimal(0), "expected": 0.0},
        }
        for row in pipeline.get(group, []):
            stage = table.get(row["stage_id"])
            probability = stage["used"] if stage else 0.0
            s1, s2 = float(row["s1"] or 0), float(row["s2"] or 0)
            month = row["month"]
            if month is None or month > last_day:
                bucket = apart["unscheduled" if month is None else "later"]
                bucket["open_deals"] += row["n"]
                bucket["open_value"] += row["s1"] or Decimal(0)
                bucket["expected"] += probability * s1
                continue
            month = max(month, first)
            per_month[month].append((probability, s1, s2))
            counts[month] += row["n"]
        series = []
        for index, month in enumerate(horizon):
            committed = float(won_now.get(group, {}).get(first, 0)) if index == 0 else 0.0
            values = month_forecast(
                committed=committed, pipeline=per_month[month], run_rate=run_rate, share=share if index == 0 else 1.0
            )
            series.append({"month": month, "open_deals": counts[month], **values})
        results[group] = {
            "months": series,
            "run_rate_months": run_rate.months,
            "probabilities": table,
            **{
                name: {**values, "open_value": money(values["open_value"]), "expected": money(values["expected"])}
                for name, values in apart.items()
            },
        }
    return results


def probabilities_by_group_fallback(engine: Engine) -> dict[int, dict]:
    return {
        stage.pk: {
            "configured": stage.probability / 100,
            "calibrated": None,
            "closed_deals": 0,
            "won": 0,
            "used": stage.probability / 100,
            "basis": "configured",
        }
        for stage in engine.stages.values()
        if stage.kind == StageKind.OPEN
    }


def forecast(
    *,
    actor: Actor,
    tz: ZoneInfo,
    months: int = 3,
    pipeline_id: int | None = None,
    owner_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or timezone.now()
    params = {
        "months": months,
        "pipeline": pipeline_id,
        "owner": owner_id,
        "today": now.astimezone(tz).date(),
        "time_zone": tz.key,  # the organization may change its zone: never answer from the old zone's entry
    }

    def compute() -> dict[str, Any]:
        engine = Engine(actor, tz=tz, now=now)
        filters = tuple((name, value) for name, value in (("pipeline", pipeline_id), ("owner", owner_id)) if value)
        result = forecast_groups(engine, months=months, filters=filters, by_owner=False)[()]
        pipeline = next((s.pipeline for s in engine.stages.values() if s.pipeline_id == pipeline_id), None)
        pipeline = pipeline or engine.default_pipeline
        return {
            "time_zone": tz.key,
            "pipeline": pipeline_id,
            "owner": owner_id,
            "currency": pipeline.currency if pipeline else None,
            "calibration": {"min_closed_deals": CALIBRATION_MIN_DEALS, "days": CALIBRATION_DAYS},
            "run_rate_months": result["run_rate_months"],
            "months": result["months"],
            "unscheduled": result["unscheduled"],
            "later": result["later"],
            "probabilities": [
                {
                    "stage": {"id": stage.pk, "name": stage.name, "pipeline": stage.pipeline_id},
                    **result["probabilities"][stage.pk],
                }
                for stage in engine.stages.values()
                if stage.pk in result["probabilities"] and (pipeline_id is None or stage.pipeline_id == pipeline_id)
            ],
        }

    return cache.cached(actor, "forecast", params, compute)


# --- weekly snapshots and accuracy ---


def forecast_rows(engine: Engine, *, week: date) -> list[ForecastSnapshot]:
    """This week's forecast of the next ``SNAPSHOT_MONTHS`` months, per owner and for the whole organization."""
    rows = []
    everyone = forecast_groups(engine, months=SNAPSHOT_MONTHS, filters=(), by_owner=False)
    per_owner = forecast_groups(engine, months=SNAPSHOT_MONTHS, filters=(), by_owner=True)
    for group, result in [*everyone.items(), *per_owner.items()]:
        owner_id = group[0] if group else None
        if group and owner_id is None:
            continue  # deals without an owner count in the organization's total only
        for month in result["months"]:
            rows.append(
                ForecastSnapshot(
                    week=week,
                    month=month["month"],
                    owner_id=owner_id,
                    expected=month["expected"],
                    low_80=month["low_80"],
                    high_80=month["high_80"],
                    low_95=month["low_95"],
                    high_95=month["high_95"],
                )
            )
    return rows


def forecast_accuracy(
    *, actor: Actor, tz: ZoneInfo, months: int = 6, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per owner (and for the whole organization, ``owner`` null, for those who see every deal): each complete month
    of the last ``months`` with a forecast, the forecast made at its start (the last weekly snapshot taken on or
    before its first day, else its first one), what was won, the error and whether it fell in the 80% interval."""
    now = now or timezone.now()
    params = {"months": months, "today": now.astimezone(tz).date(), "time_zone": tz.key}
    return cache.cached(actor, "forecast-accuracy", params, lambda: _accuracy(actor, tz, months, now))


def _accuracy(actor, tz: ZoneInfo, months: int, now: datetime) -> list[dict[str, Any]]:
    engine = Engine(actor, tz=tz, now=now)
    first = month_start(engine.today)
    start = add_months(first, -months)
    snapshots = (
        ForecastSnapshot.objects.visible_to(require_actor(actor), DEAL_VIEW)
        .filter(month__gte=start, month__lt=first)
        .order_by("owner_id", "month", "week")
    )
    chosen: dict[tuple, ForecastSnapshot] = {}
    for snapshot in snapshots:  # by week: a later one made by the month's start replaces an earlier one
        key = (snapshot.owner_id, snapshot.month)
        if key not in chosen or snapshot.week <= snapshot.month:
            chosen[key] = snapshot
    if not chosen:
        return []
    period = Period(start, first - timedelta(days=1), tz)
    per_owner = _monthly(engine, "won_value", period, (), True)
    everyone = _monthly(engine, "won_value", period, (), False).get((), {})
    labels = owner_labels(owner for owner, _month in chosen)
    owners: dict[Any, list[dict]] = defaultdict(list)
    for (owner_id, month), snapshot in sorted(chosen.items(), key=lambda item: (item[0][0] is not None, item[0])):
        actual = (
            everyone.get(month, money(0)) if owner_id is None else per_owner.get((owner_id,), {}).get(month, money(0))
        )
        error = actual - snapshot.expected
        owners[owner_id].append(
            {
                "month": month,
                "forecast": snapshot.expected,
                "low_80": snapshot.low_80,
                "high_80": snapshot.high_80,
                "actual": money(actual),
                "error": money(error),
                "absolute_percentage_error": round(abs(float(error)) / float(actual), 4) if actual else None,
                "within_80": snapshot.low_80 <= actual <= snapshot.high_80,
                "forecast_week": snapshot.week,
            }
        )
    result = []
    for owner_id, rows in owners.items():
        errors = [row["absolute_percentage_error"] for row in rows if row["absolute_percentage_error"] is not None]
        result.append(
            {
                "owner": labels.get(owner_id) if owner_id is not None else None,
                "months": rows,
                "mean_absolute_percentage_error": round(sum(errors) / len(errors), 4) if errors else None,
                "bias": money(sum(row["error"] for row in rows) / len(rows)),
                "hit_rate_80": round(sum(row["within_80"] for row in rows) / len(rows), 4),
            }
        )
    return result


def forecast_snapshots(*, actor: Actor):
    """The weekly forecast snapshots the caller may see, newest week first."""
    rows = ForecastSnapshot.objects.visible_to(require_actor(actor), DEAL_VIEW)
    return rows.order_by("-week", "owner_id", "month", "pk")
