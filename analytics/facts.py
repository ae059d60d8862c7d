"""The facts analytics counts, each one query over the records: what happened in ``[start, end)``, per local day,
owner, pipeline, stage and key.

The same query feeds the daily snapshot (for whole past days, as the system) and the live tail of every report
(from the end of the last snapshot to now, as the caller, through ``visible_to``), so a figure read from snapshots
and one read from the records are computed alike. Each range filter goes through an index: ``created_at`` for
deals and leads, ``updated_at`` for deals won, lost or moved (every stage change saves the deal), and the primary
key above a floor for activities (their ``created_at`` has no index; ids grow with time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    DateField,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate, TruncMonth

from crm.models import Activity, Lead
from crm.permissions import ACTIVITY_VIEW, LEAD_VIEW
from pipelines.choices import DealStatus, StageKind
from pipelines.models import Deal, Stage, StageChange
from pipelines.permissions import DEAL_VIEW

from .choices import Metric, Outcome

# Public dimension → the annotation every fact query carries for it.
DIMENSION_COLUMNS = {"owner": "d_owner", "pipeline": "d_pipeline", "stage": "d_stage", "key": "d_key"}
# ... and the column of the snapshot table.
SNAPSHOT_COLUMNS = {"owner": "owner_id", "pipeline": "pipeline_id", "stage": "stage_id", "key": "key"}

NO_KEY = Value("", output_field=CharField())
NO_ID = Value(None, output_field=BigIntegerField())
ZERO = Value(0, output_field=BigIntegerField())
NO_AMOUNT = Value(0, output_field=DecimalField(max_digits=20, decimal_places=2))


class Seconds(Func):
    """Whole seconds of an interval: ``ROUND(EXTRACT(EPOCH FROM interval))``."""

    template = "ROUND(EXTRACT(EPOCH FROM %(expressions)s))::bigint"
    output_field = BigIntegerField()


def _between(field: str, start: datetime | None, end: datetime | None) -> Q:
    condition = Q()
    if start is not None:
        condition &= Q(**{f"{field}__gte": start})
    if end is not None:
        condition &= Q(**{f"{field}__lt": end})
    return condition


def _elapsed(later: str, earlier: str) -> Seconds:
    return Seconds(ExpressionWrapper(F(later) - F(earlier), output_field=DurationField()))


@dataclass(frozen=True)
class Fact:
    metric: str
    model: type[Model]  # the record whose scope applies (``Model.objects.visible_to(actor, permission)``)
    permission: str
    dimensions: tuple[str, ...]  # public dimensions besides time: owner, pipeline, stage, key
    key_name: str | None  # what ``key`` means publicly: source, kind, outcome
    query: Callable[..., QuerySet]  # (visible, start, end, tz, floor) → rows annotated d_day, d_*, v_amount, v_seconds
    durations: bool = False  # keep every duration (exact medians)

    def rows(self, visible: QuerySet, *, start, end, tz: ZoneInfo, floor: int | None = None) -> QuerySet:
        return self.query(visible, start, end, tz, floor).order_by()

    def grouped(self, visible: QuerySet, *, start, end, tz, floor=None, by: list[str]) -> QuerySet:
        """Count, amount, seconds (and durations) per ``by`` annotation names."""
        aggregates = {"n": Count("*"), "total": Sum("v_amount"), "secs": Sum("v_seconds")}
        if self.durations:
            aggregates["durs"] = ArrayAgg("v_seconds")
        return self.rows(visible, start=start, end=end, tz=tz, floor=floor).values(*by).annotate(**aggregates)


# --- deals ---


def _deals_created(visible, start, end, tz, floor):
    return visible.filter(_between("created_at", start, end)).annotate(
        d_day=TruncDate("created_at", tzinfo=tz),
        d_owner=F("owner_id"),
        d_pipeline=F("pipeline_id"),
        d_stage=NO_ID,
        d_key=NO_KEY,
        v_amount=F("amount"),
        v_seconds=ZERO,
    )


def _updated_since(visible, start):
    # A deal won, lost or moved at t was saved at t: its updated_at is t or later (an index range).
    return visible.filter(updated_at__gte=start) if start is not None else visible


def _lead_source():
    source = Lead.objects.filter(converted_deal_id=OuterRef("pk")).exclude(source="").values("source")[:1]
    return Coalesce(Subquery(source, output_field=CharField()), NO_KEY)


def _won(visible, start, end, tz, key):
    return (
        _updated_since(visible, start)
        .filter(status=DealStatus.WON)
        .filter(_between("won_at", start, end))
        .annotate(
            d_day=TruncDate("won_at", tzinfo=tz),
            d_owner=F("owner_id"),
            d_pipeline=F("pipeline_id"),
            d_stage=NO_ID,
            d_key=key,
            v_amount=F("amount"),
            v_seconds=_elapsed("won_at", "created_at"),
        )
    )


def _deals_won(visible, start, end, tz, floor):
    return _won(visible, start, end, tz, _lead_source())


def _deals_won_fresh(visible, start, end, tz, floor):
    """Won in the local month they were created in: business the pipeline at the month's start could not show."""
    return _won(visible, start, end, tz, NO_KEY).filter(created_at__gte=TruncMonth("won_at", tzinfo=tz))


def _deals_lost(visible, start, end, tz, floor):
    return (
        _updated_since(visible, start)
        .filter(status=DealStatus.LOST)
        .filter(_between("lost_at", start, end))
        .annotate(
            d_day=TruncDate("lost_at", tzinfo=tz),
            d_owner=F("owner_id"),
            d_pipeline=F("pipeline_id"),
            d_stage=NO_ID,
            d_key=NO_KEY,
            v_amount=F("amount"),
            v_seconds=_elapsed("lost_at", "created_at"),
        )
    )


def _furthest_open_stage():
    """The open stage furthest down the pipeline (by position) that the deal ever entered."""
    reached = (
        StageChange.objects.filter(deal_id=OuterRef("pk"), to_stage__kind=StageKind.OPEN)
        .order_by("-to_stage__position", "-to_stage_id")
        .values("to_stage_id")[:1]
    )
    return Subquery(reached, output_field=BigIntegerField())


def _deals_closed(visible, start, end, tz, floor):
    """Deals closed in the range with the furthest stage they reached: a won deal reached every open stage (its
    stage is the won stage), a lost one the furthest open stage it entered. Funnel and calibrated stage
    probabilities both read this."""
    closed_at = Coalesce("won_at", "lost_at")
    return (
        _updated_since(visible, start)
        .filter(status__in=[DealStatus.WON, DealStatus.LOST])
        .annotate(closed_at=closed_at)
        .filter(_between("closed_at", start, end))
        .annotate(
            d_day=TruncDate("closed_at", tzinfo=tz),
            d_owner=F("owner_id"),
            d_pipeline=F("pipeline_id"),
            d_stage=Case(When(status=DealStatus.WON, then=F("stage_id")), default=_furthest_open_stage()),
            d_key=Case(
                When(status=DealStatus.WON, then=Value(Outcome.WON.value)),
                default=Value(Outcome.LOST.value),
                output_field=CharField(),
            ),
            v_amount=F("amount"),
            v_seconds=_elapsed("closed_at", "created_at"),
        )
    )


def _stage_exits(visible, start, end, tz, floor):
    """Moves out of an open stage (to the next one, back, or to won or lost), with the time spent in it."""
    deals = _updated_since(visible, start).values("pk")
    return (
        StageChange.objects.filter(deal__in=deals, from_stage__kind=StageKind.OPEN)
        .exclude(time_in_previous_stage=None)
        .filter(_between("changed_at", start, end))
        .annotate(
            d_day=TruncDate("changed_at", tzinfo=tz),
            d_owner=F("deal__owner_id"),
            d_pipeline=F("deal__pipeline_id"),
            d_stage=F("from_stage_id"),
            d_key=NO_KEY,
            v_amount=F("deal__amount"),
            v_seconds=Seconds(F("time_in_previous_stage")),
        )
    )


def open_deals(visible, stages) -> QuerySet:
    """The open deals of ``visible``: those in an open stage (the services keep a deal's status equal to its stage's
    kind), named by stage and pipeline ids so that the board index answers alone (an index-only scan: 12 ms for
    41,000 open deals among a million, where ``status = 'open'`` reads the table for 150 ms)."""
    open_stages = [stage for stage in stages if stage.kind == StageKind.OPEN]
    return visible.filter(
        pipeline_id__in=sorted({stage.pipeline_id for stage in open_stages}),
        stage_id__in=[stage.pk for stage in open_stages],
    ).annotate(
        d_day=Value(None, output_field=DateField()),
        d_owner=F("owner_id"),
        d_pipeline=F("pipeline_id"),
        d_stage=F("stage_id"),
        d_key=NO_KEY,
        v_amount=F("amount"),
        v_seconds=ZERO,
    )


def _deals_open(visible, start, end, tz, floor):
    """The open deals now (a state, not a flow: ``start``/``end`` do not apply)."""
    return open_deals(visible, list(Stage.objects.all()))


# --- leads and activities ---


def _leads_created(visible, start, end, tz, floor):
    return visible.filter(_between("created_at", start, end)).annotate(
        d_day=TruncDate("created_at", tzinfo=tz),
        d_owner=F("owner_id"),
        d_pipeline=NO_ID,
        d_stage=NO_ID,
        d_key=F("source"),
        v_amount=Coalesce("estimated_value", NO_AMOUNT),
        v_seconds=ZERO,
    )


def _activities_created(visible, start, end, tz, floor):
    rows = visible.filter(_between("created_at", start, end))
    if floor:
        rows = rows.filter(pk__gt=floor)
    return rows.annotate(
        d_day=TruncDate("created_at", tzinfo=tz),
        d_owner=F("owner_id"),
        d_pipeline=NO_ID,
        d_stage=NO_ID,
        d_key=F("kind"),
        v_amount=NO_AMOUNT,
        v_seconds=ZERO,
    )


FACTS: dict[str, Fact] = {
    fact.metric: fact
    for fact in [
        Fact(Metric.DEALS_CREATED, Deal, DEAL_VIEW, ("owner", "pipeline"), None, _deals_created),
        Fact(Metric.DEALS_WON, Deal, DEAL_VIEW, ("owner", "pipeline", "key"), "source", _deals_won),
        Fact(Metric.DEALS_WON_FRESH, Deal, DEAL_VIEW, ("owner", "pipeline"), None, _deals_won_fresh),
        Fact(Metric.DEALS_LOST, Deal, DEAL_VIEW, ("owner", "pipeline"), None, _deals_lost),
        Fact(Metric.DEALS_CLOSED, Deal, DEAL_VIEW, ("owner", "pipeline", "stage", "key"), "outcome", _deals_closed),
        Fact(Metric.STAGE_EXITS, Deal, DEAL_VIEW, ("owner", "pipeline", "stage"), None, _stage_exits, durations=True),
        Fact(Metric.DEALS_OPEN, Deal, DEAL_VIEW, ("owner", "pipeline", "stage"), None, _deals_open),
        Fact(Metric.LEADS_CREATED, Lead, LEAD_VIEW, ("owner", "key"), "source", _leads_created),
        Fact(Metric.ACTIVITIES_CREATED, Activity, ACTIVITY_VIEW, ("owner", "key"), "kind", _activities_created),
    ]
}
# Facts counted per day (the open pipeline is a state, recorded at each day's end).
FLOWS = [metric for metric in FACTS if metric != Metric.DEALS_OPEN]
