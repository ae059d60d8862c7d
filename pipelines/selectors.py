"""Reads of pipelines and deals: the board, the forecast, statistics and a deal's timeline.

Every read that shows deals takes the caller's :class:`rbac.access.Access` and applies the record scope of
``pipelines.deal.view`` (a Sales Rep with ``own`` sees the numbers of their own deals only). Each costs a constant
number of queries, whatever the number of stages or deals.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import EmptyResultSet
from django.db.models import (
    Avg,
    BigIntegerField,
    BooleanField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django_tenants.utils import schema_context

from config.db import connection
from crm import selectors as crm_selectors
from crm.models import Tag
from rbac.actor import Actor

from .choices import DealStatus, StageKind
from .models import Deal, Pipeline, Stage, StageChange
from .permissions import DEAL_VIEW

CENT = Decimal("0.01")
# Deals on the board and in a stage's pages: newest first (matches the deal_board_idx index).
BOARD_ORDER = ("-created_at", "-pk")


def _money(value: Decimal | None) -> Decimal:
    return (value or Decimal("0")).quantize(CENT, rounding=ROUND_HALF_UP)


def pipelines() -> QuerySet[Pipeline]:
    """Pipelines with their stages in order, in two queries."""
    return Pipeline.objects.prefetch_related(Prefetch("stages", queryset=Stage.objects.order_by("position")))


def stages() -> QuerySet[Stage]:
    return Stage.objects.select_related("pipeline")


def deals() -> QuerySet[Deal]:
    """Deals with what their output needs, in a constant number of queries."""
    return Deal.objects.select_related("owner", "pipeline", "stage", "contact", "company").prefetch_related(
        Prefetch("tags", queryset=Tag.objects.only("name"))
    )


def visible_deals(*, access, permission: str = DEAL_VIEW) -> QuerySet[Deal]:
    return Deal.objects.visible_to(access, permission)


def deal_count(organization) -> int:
    """Deals stored by ``organization``: the usage counter of ``Limit.DEALS``. Billing also asks from the public
    schema (admin, plan changes), so it reads the organization's own schema explicitly."""
    if connection.schema_name == organization.schema_name:
        return Deal.objects.count()
    with schema_context(organization.schema_name):
        return Deal.objects.count()


def stage_deals(*, stage: Stage, access) -> QuerySet[Deal]:
    """The deals of one stage the caller may see, in board order (for the pages after the board's first)."""
    return visible_deals(access=access).filter(stage=stage).order_by(*BOARD_ORDER)


def card_rows(queryset: QuerySet[Deal]) -> QuerySet[Deal, Any]:
    """What a board card shows, as flat rows with the tag names, in one query (no model instances: the board
    renders hundreds of cards)."""
    tag_names = ArraySubquery(Deal.tags.through.objects.filter(deal_id=OuterRef("pk")).values("tag__name"))
    return queryset.values(
        "id",
        "title",
        "amount",
        "currency",
        "status",
        "stage_id",
        "expected_close_date",
        "stage_entered_at",
        "updated_at",
        "owner_id",
        "contact_id",
        "company_id",
        owner_first_name=F("owner__first_name"),
        owner_last_name=F("owner__last_name"),
        owner_email=F("owner__email"),
        contact_first_name=F("contact__first_name"),
        contact_last_name=F("contact__last_name"),
        contact_email=F("contact__email"),
        company_name=F("company__name"),
        stage_name=F("stage__name"),
        rotting_days=F("stage__rotting_days"),
        tag_names=tag_names,
    )


# --- board ---


@dataclass
class BoardColumn:
    stage: Stage
    count: int = 0
    amount: Decimal = Decimal("0.00")
    weighted_amount: Decimal = Decimal("0.00")
    deals: list[dict[str, Any]] = field(default_factory=list)  # card rows
    next: str | None = None


def board(*, pipeline: Pipeline, access, per_stage: int, owner_id: int | None = None) -> list[BoardColumn]:
    """Each stage of the pipeline, in order, with its deal count, amount, weighted amount and first ``per_stage``
    deals.

    One query whatever the size (:func:`_board_rows`): it reads the stages, ranks, counts and sums the deals per
    stage and loads the winning cards with their tags.
    """
    visible = visible_deals(access=access).filter(pipeline=pipeline)
    if owner_id is not None:
        visible = visible.filter(owner_id=owner_id)
    rows = _board_rows(visible, per_stage, pipeline)
    if rows is None:  # no scope at all: every stage, empty
        return [BoardColumn(stage=stage) for stage in Stage.objects.filter(pipeline=pipeline).order_by("position")]
    columns: dict[int, BoardColumn] = {}
    for stage_values, count, total, card in rows:
        column = columns.get(stage_values[0])
        if column is None:  # the stage's first row
            stage = Stage(pipeline=pipeline, **dict(zip(_BOARD_STAGE_FIELDS, stage_values, strict=True)))
            column = columns[stage.pk] = BoardColumn(stage=stage, count=count, amount=_money(total))
            column.weighted_amount = _money((total or Decimal("0")) * stage.probability / 100)
        if card is not None:
            column.deals.append(card)
    return list(columns.values())


# The stage a per-stage part of :func:`_board_rows` is about, and the cards it picks.
_BOARD_STAGE = RawSQL('"board_stage"."id"', [], output_field=BigIntegerField())
_ON_BOARD = RawSQL(
    f'"{Deal._meta.db_table}"."id" = ANY(ARRAY(SELECT unnest(ids) FROM per_stage))', [], output_field=BooleanField()
)
# What the board reads of a stage: what its column shows (``DealStageOutput``) and what its cards' rot needs.
_BOARD_STAGE_FIELDS = ("id", "name", "kind", "probability", "position", "rotting_days")


@functools.cache
def _board_cards_sql() -> tuple[str, tuple]:
    """The query loading the board's cards: the same for every caller and organization (tables are found through
    the schema's search path), so it is compiled once a process (0.7 ms a board)."""
    return card_rows(Deal.objects.filter(_ON_BOARD)).query.sql_with_params()


def _board_rows(visible: QuerySet[Deal], per_stage: int, pipeline: Pipeline) -> list[tuple] | None:
    """Every stage of the pipeline in order, as ``(its _BOARD_STAGE_FIELDS values, deal count, amount, card)``:
    one row per card of its first ``per_stage`` (:func:`card_rows`' keys), or one with the card None when it has
    none; in one query. None when ``visible`` can hold nothing.

    Per stage (``LATERAL``), both read the ``deal_board_rank_idx`` index: the count and sum an index-only scan
    of the stage's entries (the index includes the amount), the first cards a ``LIMIT`` on the index's order (only
    ``per_stage`` entries read). The winners are then loaded by primary key through ``= ANY(ARRAY(...))``: the
    planner cannot foresee how few they are, so a plain join would join every deal.
    """
    in_stage = visible.filter(stage_id=_BOARD_STAGE).order_by()
    try:
        totals_sql, totals_params = in_stage.values("amount").query.sql_with_params()
        top_sql, top_params = (in_stage.order_by(*BOARD_ORDER).values("pk")[:per_stage]).query.sql_with_params()
    except EmptyResultSet:  # no scope at all: .none()
        return None
    cards_sql, cards_params = _board_cards_sql()
    stage_columns = ", ".join(f"board_stage.{name}" for name in _BOARD_STAGE_FIELDS)
    sql = f"""
        WITH per_stage AS MATERIALIZED (
            SELECT {stage_columns}, totals.n, totals.total, ARRAY({top_sql}) AS ids
            FROM "{Stage._meta.db_table}" board_stage,
            LATERAL (SELECT COUNT(*) AS n, SUM(v.amount) AS total FROM ({totals_sql}) v) totals
            WHERE board_stage.pipeline_id = %s
        )
        SELECT {", ".join(f"per_stage.{name}" for name in _BOARD_STAGE_FIELDS)}, per_stage.n, per_stage.total, card.*
        FROM per_stage LEFT JOIN ({cards_sql}) card ON card.stage_id = per_stage.id
        ORDER BY per_stage.position, per_stage.id, array_position(per_stage.ids, card.id)
    """
    width = len(_BOARD_STAGE_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*top_params, *totals_params, pipeline.pk, *cards_params])
        names = [column.name for column in cursor.description[width + 2 :]]
        return [
            (
                row[:width],
                row[width],
                row[width + 1],
                None if row[width + 2] is None else dict(zip(names, row[width + 2 :], strict=True)),
            )
            for row in cursor.fetchall()
        ]


# --- forecast ---


def _month(value: date | datetime | None) -> str | None:
    return value.strftime("%Y-%m") if value else None


def forecast(*, pipeline: Pipeline, access, start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """Open amount and probability-weighted amount by expected close month, won amount by month won.

    ``start``/``end`` (first days of months, inclusive) bound both series. Open deals without an expected close
    date are reported apart as ``unscheduled``. Two queries.
    """
    visible = visible_deals(access=access).filter(pipeline=pipeline).order_by()
    probability = {stage.pk: stage.probability for stage in pipeline.stages.all()}
    open_deals = visible.filter(status=DealStatus.OPEN)
    won_deals = visible.filter(status=DealStatus.WON)
    if start:
        open_deals = open_deals.filter(Q(expected_close_date__gte=start) | Q(expected_close_date=None))
        won_deals = won_deals.filter(won_at__date__gte=start)
    if end:  # the month's last day, not the next month's first: 9999-12 has no next month
        last_day = end.replace(day=calendar.monthrange(end.year, end.month)[1])
        open_deals = open_deals.filter(Q(expected_close_date__lte=last_day) | Q(expected_close_date=None))
        won_deals = won_deals.filter(won_at__date__lte=last_day)
    # Grouped by stage as well: the weighted amount is each stage's sum × its probability, with no join.
    open_rows = (
        open_deals.annotate(month=TruncMonth("expected_close_date"))
        .values("month", "stage_id")
        .annotate(n=Count("pk"), total=Sum("amount"))
    )
    won_rows = (
        won_deals.annotate(month=TruncMonth("won_at")).values("month").annotate(n=Count("pk"), total=Sum("amount"))
    )
    empty: dict[str, Any] = {
        "open_count": 0,
        "open_amount": Decimal("0"),
        "weighted_amount": Decimal("0"),
        "won_count": 0,
        "won_amount": Decimal("0"),
    }
    months: dict[str, dict[str, Any]] = {}
    unscheduled: dict[str, Any] = {"open_count": 0, "open_amount": Decimal("0"), "weighted_amount": Decimal("0")}
    for row in open_rows:
        target = unscheduled if row["month"] is None else months.setdefault(str(_month(row["month"])), dict(empty))
        target["open_count"] += row["n"]
        target["open_amount"] += row["total"]
        target["weighted_amount"] += row["total"] * probability.get(row["stage_id"], 0) / 100
    for target in [unscheduled, *months.values()]:
        target["open_amount"] = _money(target["open_amount"])
        target["weighted_amount"] = _money(target["weighted_amount"])
    for won in won_rows:
        target = months.setdefault(str(_month(won["month"])), dict(empty))
        target["won_count"], target["won_amount"] = won["n"], _money(won["total"])
    series = [{"month": month, **values} for month, values in sorted(months.items())]
    totals = {
        "open_amount": _money(sum((m["open_amount"] for m in series), unscheduled["open_amount"])),
        "weighted_amount": _money(sum((m["weighted_amount"] for m in series), unscheduled["weighted_amount"])),
        "won_amount": _money(sum((m["won_amount"] for m in series), Decimal("0"))),
    }
    return {
        "pipeline": pipeline.pk,
        "currency": pipeline.currency,
        "months": series,
        "unscheduled": unscheduled,
        "totals": totals,
    }


# --- statistics ---


class MakeInterval(Func):
    """PostgreSQL ``make_interval(days => n)``."""

    function = "make_interval"
    template = "%(function)s(days => %(expressions)s)"
    output_field = DurationField()


def rotting_deals(*, pipeline: Pipeline, access, now: datetime | None = None) -> QuerySet[Deal]:
    """Open deals that stayed in their stage longer than the stage's ``rotting_days``."""
    now = now or timezone.now()
    return (
        visible_deals(access=access)
        .filter(pipeline=pipeline, status=DealStatus.OPEN, stage__rotting_days__isnull=False)
        .filter(stage_entered_at__lt=Value(now) - MakeInterval(F("stage__rotting_days")))
    )


def _reached_by_position(pipeline: Pipeline, visible: QuerySet[Deal]) -> dict[int, int]:
    """``{position: deals whose furthest stage reached is at this position}``, over non-lost stages, from the
    stage history and each deal's current stage. One query."""
    try:
        visible_sql, params = (
            visible.filter(pipeline=pipeline).order_by().values("pk", "stage_id").query.sql_with_params()
        )
    except EmptyResultSet:  # no scope at all: .none()
        return {}
    change, stage = StageChange._meta.db_table, Stage._meta.db_table
    sql = f"""
        WITH visible (id, stage_id) AS ({visible_sql}),
        reached AS (
            SELECT c.deal_id, c.to_stage_id AS stage_id FROM "{change}" c WHERE c.deal_id IN (SELECT id FROM visible)
            UNION ALL
            SELECT id, stage_id FROM visible
        ),
        furthest AS (
            SELECT r.deal_id, MAX(s.position) AS top
            FROM reached r JOIN "{stage}" s ON s.id = r.stage_id
            WHERE s.pipeline_id = %s AND s.kind <> %s
            GROUP BY r.deal_id
        )
        SELECT top, COUNT(*) FROM furthest GROUP BY top
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, pipeline.pk, StageKind.LOST])
        return dict(cursor.fetchall())


def stats(*, pipeline: Pipeline, access, now: datetime | None = None, rotting_sample: int = 20) -> dict[str, Any]:
    """Win rate, average won deal size, average sales cycle, stage-to-stage conversion and rotting deals.

    Conversion: a deal *reached* a stage when it entered it or any later (non-lost) stage, so the deals that
    reached stage i+1 are a subset of those that reached stage i; the rate is their share. Five queries.
    """
    now = now or timezone.now()
    visible = visible_deals(access=access).filter(pipeline=pipeline)
    cycle = ExpressionWrapper(F("won_at") - F("created_at"), output_field=DurationField())
    won = Q(status=DealStatus.WON)
    totals = visible.order_by().aggregate(
        open=Count("pk", filter=Q(status=DealStatus.OPEN)),
        won=Count("pk", filter=won),
        lost=Count("pk", filter=Q(status=DealStatus.LOST)),
        won_amount=Sum("amount", filter=won),
        average_won_amount=Avg("amount", filter=won),
        average_cycle=Avg(cycle, filter=won),
    )
    closed = totals["won"] + totals["lost"]
    cycle_days = totals["average_cycle"].total_seconds() / 86400 if totals["average_cycle"] else None

    ordered = [stage for stage in pipeline.stages.all() if stage.kind != StageKind.LOST]
    furthest = _reached_by_position(pipeline, visible)
    reached = [sum(n for position, n in furthest.items() if position >= stage.position) for stage in ordered]
    conversion = [
        {
            "from_stage": {"id": a.pk, "name": a.name},
            "to_stage": {"id": b.pk, "name": b.name},
            "reached_from": reached[i],
            "reached_to": reached[i + 1],
            "rate": round(reached[i + 1] / reached[i], 4) if reached[i] else None,
        }
        for i, (a, b) in enumerate(zip(ordered, ordered[1:], strict=False))
    ]

    rotting = rotting_deals(pipeline=pipeline, access=access, now=now)
    by_stage = {row["stage_id"]: row["n"] for row in rotting.order_by().values("stage_id").annotate(n=Count("pk"))}
    sample = rotting.select_related("stage").order_by("stage_entered_at", "pk")[:rotting_sample]
    return {
        "pipeline": pipeline.pk,
        "currency": pipeline.currency,
        "deals": {"open": totals["open"], "won": totals["won"], "lost": totals["lost"]},
        "win_rate": round(totals["won"] / closed, 4) if closed else None,
        "won_amount": _money(totals["won_amount"]),
        "average_won_amount": _money(totals["average_won_amount"]) if totals["won"] else None,
        "average_sales_cycle_days": round(cycle_days, 2) if cycle_days is not None else None,
        "conversion": conversion,
        "rotting": {
            "count": sum(by_stage.values()),
            "by_stage": [
                {"stage": {"id": s.pk, "name": s.name}, "count": by_stage[s.pk]}
                for s in pipeline.stages.all()
                if s.pk in by_stage
            ],
            "deals": [
                {
                    "id": deal.pk,
                    "title": deal.title,
                    "stage": {"id": deal.stage_id, "name": deal.stage.name},
                    "days_in_stage": (now - deal.stage_entered_at).days,
                    "rotting_days": deal.stage.rotting_days,
                }
                for deal in sample
            ],
        },
    }


# --- timeline ---


def deal_timeline(*, deal: Deal, access: Actor) -> QuerySet:
    """The deal's activities (those the caller may see) and recorded events, newest first: the CRM records'
    timeline (:func:`crm.selectors.timeline`), paginated the same way. Each stage move shows once, as its
    ``deal.stage_changed`` event (from and to stage, time spent, who moved it, in the events' actor shape)."""
    return crm_selectors.timeline(record=deal, access=access)


def deal_timeline_items(rows: list[tuple[str, str, datetime]]) -> list[dict[str, Any]]:
    """A page of :func:`deal_timeline` rows as items ``{type, at, data}``."""
    return crm_selectors.timeline_items(rows)
