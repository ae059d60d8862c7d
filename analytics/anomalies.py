"""Anomalies on daily metrics, robust to weekly seasonality.

Method: the ``WINDOW_DAYS`` days before the day checked are decomposed by STL (seasonal-trend decomposition by
LOESS, statsmodels, period 7, robust weights) into trend, weekly pattern and remainder. The expected value of the
day is the trend where the history ends plus the weekly pattern of its weekday; the scale is the median absolute
deviation of the remainders (scipy, normal-consistent), never below a floor: √expected for counts
(Poisson noise) and a tenth of the mean daily value for amounts, so a calm series does not make every small wobble
an anomaly. The day is anomalous outside expected ± ``THRESHOLD`` × scale (a lower bound below 0 is 0). Robust
weights keep earlier outliers from bending the pattern; the weekly component keeps quiet weekends normal. A series
needs ``MIN_HISTORY_DAYS`` of snapshots before anything is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rbac.actor import Actor, SystemActor, require_actor

from .choices import Direction, Metric
from .facts import ACTIVITY_VIEW, DEAL_VIEW, LEAD_VIEW

WINDOW_DAYS = 56
MIN_HISTORY_DAYS = 28
THRESHOLD = 3.5


@dataclass(frozen=True)
class Series:
    """A daily metric that anomalies are looked for in: its snapshot rows, the field summed, and who may see it."""

    name: str
    metric: str
    field: str  # count or amount
    permission: str


SERIES = {
    series.name: series
    for series in [
        Series("leads_created", Metric.LEADS_CREATED, "count", LEAD_VIEW),
        Series("deals_created", Metric.DEALS_CREATED, "count", DEAL_VIEW),
        Series("won_value", Metric.DEALS_WON, "amount", DEAL_VIEW),
        Series("activities", Metric.ACTIVITIES_CREATED, "count", ACTIVITY_VIEW),
    ]
}


@dataclass(frozen=True)
class Verdict:
    value: float
    expected: float
    lower: float
    upper: float
    score: float

    @property
    def anomalous(self) -> bool:
        return not self.lower <= self.value <= self.upper

    @property
    def direction(self) -> str:
        return Direction.ABOVE if self.value > self.upper else Direction.BELOW


def judge(values: list[float], *, counts: bool) -> Verdict | None:
    """The verdict on the last of ``values`` (one per day, oldest first), or None with too little history. The
    days before it are decomposed; the day itself takes no part in its own expected range."""
    import numpy as np
    from scipy.stats import median_abs_deviation
    from statsmodels.tsa.seasonal import STL

    series = np.asarray(values, dtype=float)
    if series.size < MIN_HISTORY_DAYS + 1:
        return None
    history, value = series[:-1], float(series[-1])
    if not np.any(history) and not value:
        return None
    fit = STL(history, period=7, robust=True).fit()
    # The trend where the history ends, and the weekly pattern of the same weekday a week before.
    expected = max(float(fit.trend[-1] + fit.seasonal[-7]), 0.0)
    spread = float(median_abs_deviation(fit.resid, scale="normal"))
    floor = math.sqrt(max(expected, 1.0)) if counts else max(1.0, 0.1 * float(np.mean(np.abs(history))))
    scale = max(spread, floor)
    return Verdict(
        value=value,
        expected=expected,
        lower=max(expected - THRESHOLD * scale, 0.0),
        upper=expected + THRESHOLD * scale,
        score=round((value - expected) / scale, 2),
    )


def anomaly_list(*, actor: Actor, metric: str | None = None, since=None, owner_id: int | None = None):
    """The anomalies the caller may see, newest first: of a series whose records he sees with ``all`` scope, the
    organization's and every owner's; with ``own`` scope, his own only (the organization's total would tell the
    others' figures)."""
    from django.db.models import F, Q

    from .models import Anomaly

    if isinstance(require_actor(actor), SystemActor):
        rows = Anomaly.objects.all()
    else:
        condition = Q(pk__in=[])
        for series in SERIES.values():
            visible = Anomaly.objects.visible_to(actor, series.permission).filter(metric=series.name)
            condition |= Q(pk__in=visible.values("pk"))
        rows = Anomaly.objects.filter(condition)
    if metric:
        rows = rows.filter(metric=metric)
    if since:
        rows = rows.filter(day__gte=since)
    if owner_id:
        rows = rows.filter(owner_id=owner_id)
    return rows.order_by("-day", "metric", F("owner_id").asc(nulls_first=True), "pk")
