"""Next-best-actions on open deals: which deals need attention, why, how urgently, and what to do.

Rules (each a reason; a deal may have several):

| reason | when | weight |
|---|---|---|
| ``high_value_at_risk`` | amount in the top ``HIGH_VALUE_SHARE`` of the open deals the caller sees (at least | 90 |
|   | ``HIGH_VALUE_MIN_DEALS`` of them), with a risk below other than a missing contact | |
| ``close_date_passed`` | expected close date before today | 70 |
| ``rotting`` | in its stage longer than the stage's rotting days | 60 |
| ``no_next_activity`` | no uncompleted activity due from now on | 50 |
| ``stale`` | no activity logged for ``STALE_DAYS`` days (nor since creation, for a newer deal past that age) | 40 |
| ``no_contact`` | no contact person | 20 |

A deal's score is the sum of its weights; its priority comes from its heaviest reason (≥ 70 high, ≥ 40 medium,
else low), and its next-best-action is that reason's suggestion. Flags and scores are computed in SQL, so a list
is one query for its page and one for its count, whatever the number of deals.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from crm.models import Activity
from pipelines.choices import DealStatus
from pipelines.models import Deal
from rbac.actor import Actor, require_actor, user_of

from .choices import ActionKind, Priority
from .engine import sql_of
from .facts import DEAL_VIEW

STALE_DAYS = 14
HIGH_VALUE_SHARE = 0.2
HIGH_VALUE_MIN_DEALS = 5

WEIGHTS = {
    ActionKind.HIGH_VALUE_AT_RISK: 90,
    ActionKind.CLOSE_DATE_PASSED: 70,
    ActionKind.ROTTING: 60,
    ActionKind.NO_NEXT_ACTIVITY: 50,
    ActionKind.STALE: 40,
    ActionKind.NO_CONTACT: 20,
}
SUGGESTIONS = {
    ActionKind.HIGH_VALUE_AT_RISK: "Escalate: agree a mutual close plan with the buyer and bring in your manager.",
    ActionKind.CLOSE_DATE_PASSED: (
        "Confirm the timeline with the buyer, then update the expected close date or close the deal."
    ),
    ActionKind.ROTTING: "Move the deal forward, or mark it lost if it has stalled for good.",
    ActionKind.NO_NEXT_ACTIVITY: "Schedule the next step: a task or a meeting with a due date.",
    ActionKind.STALE: "Get back in touch: call or e-mail the contact and log it.",
    ActionKind.NO_CONTACT: "Add the contact person you are dealing with.",
}


class MakeInterval(Func):
    """PostgreSQL ``make_interval(days => n)``."""

    function = "make_interval"
    template = "%(function)s(days => %(expressions)s)"
    output_field = DurationField()


def _flag(condition: Q) -> ExpressionWrapper:
    return ExpressionWrapper(condition, output_field=BooleanField())


def priority_of(weight: int) -> str:
    if weight >= 70:
        return Priority.HIGH
    if weight >= 40:
        return Priority.MEDIUM
    return Priority.LOW


def high_value_threshold(visible: QuerySet) -> Decimal | None:
    """The amount from which an open deal is in the top ``HIGH_VALUE_SHARE`` of those visible (one query)."""
    from django.db import connection

    found = sql_of(visible.filter(status=DealStatus.OPEN).order_by().values("amount"))
    if found is None:
        return None
    sql, params = found
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*), percentile_disc(%s) WITHIN GROUP (ORDER BY a.amount) FROM ({sql}) a",
            [1 - HIGH_VALUE_SHARE, *params],
        )
        count, threshold = cursor.fetchone()
    if count < HIGH_VALUE_MIN_DEALS or threshold is None or threshold <= 0:
        return None
    return threshold


def flagged(visible: QuerySet, *, now: datetime, today, threshold: Decimal | None) -> QuerySet:
    """Open deals of ``visible`` annotated with a flag per reason, their ``score`` and ``top`` weight."""
    last_activity = Activity.objects.filter(deal_id=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    upcoming = Activity.objects.filter(deal_id=OuterRef("pk"), completed_at=None, due_at__gte=now)
    stale_before = now - timedelta(days=STALE_DAYS)
    deals = (
        visible.filter(status=DealStatus.OPEN)
        .select_related("stage", "contact")
        .annotate(
            last_activity_at=Subquery(last_activity),
            has_next=Exists(upcoming),
        )
        .annotate(
            f_close=_flag(Q(expected_close_date__lt=today)),
            f_rotting=_flag(
                Q(stage__rotting_days__isnull=False)
                & Q(stage_entered_at__lt=Value(now) - MakeInterval(F("stage__rotting_days")))
            ),
            f_next=_flag(Q(has_next=False)),
            f_stale=_flag(
                Q(created_at__lt=stale_before) & (Q(last_activity_at__lt=stale_before) | Q(last_activity_at=None))
            ),
            f_contact=_flag(Q(contact_id=None)),
        )
    )
    risky = Q(f_close=True) | Q(f_rotting=True) | Q(f_next=True) | Q(f_stale=True)
    if threshold is not None:
        deals = deals.annotate(f_high=_flag(Q(amount__gte=threshold) & risky))
    else:
        deals = deals.annotate(f_high=Value(False, output_field=BooleanField()))
    flags = {
        ActionKind.HIGH_VALUE_AT_RISK: "f_high",
        ActionKind.CLOSE_DATE_PASSED: "f_close",
        ActionKind.ROTTING: "f_rotting",
        ActionKind.NO_NEXT_ACTIVITY: "f_next",
        ActionKind.STALE: "f_stale",
        ActionKind.NO_CONTACT: "f_contact",
    }
    score = sum(
        (
            Case(When(**{name: True}, then=Value(WEIGHTS[kind])), default=Value(0), output_field=IntegerField())
            for kind, name in flags.items()
        ),
        Value(0, output_field=IntegerField()),
    )
    top = Case(
        *(When(**{name: True}, then=Value(WEIGHTS[kind])) for kind, name in flags.items()),
        default=Value(0),
        output_field=IntegerField(),
    )
    return deals.annotate(score=score, top=top)


def _reasons(deal, *, now: datetime, today, threshold: Decimal | None) -> list[dict[str, Any]]:
    reasons = []

    def add(kind: ActionKind, reason: str) -> None:
        reasons.append(
            {
                "kind": kind,
                "reason": reason,
                "priority": priority_of(WEIGHTS[kind]),
                "weight": WEIGHTS[kind],
                "suggested_action": SUGGESTIONS[kind],
            }
        )

    if deal.f_high:
        add(
            ActionKind.HIGH_VALUE_AT_RISK,
            f"{deal.amount} {deal.currency} is in the top {round(HIGH_VALUE_SHARE * 100)}% "
            f"of open deals (from {threshold}) and the deal shows a risk below.",
        )
    if deal.f_close:
        days = (today - deal.expected_close_date).days
        add(ActionKind.CLOSE_DATE_PASSED, f"Expected to close on {deal.expected_close_date}, {days} days ago.")
    if deal.f_rotting:
        days = (now - deal.stage_entered_at).days
        add(
            ActionKind.ROTTING,
            f"In {deal.stage.name} for {days} days; deals rot there after {deal.stage.rotting_days}.",
        )
    if deal.f_next:
        add(ActionKind.NO_NEXT_ACTIVITY, "No activity is scheduled from now on.")
    if deal.f_stale:
        if deal.last_activity_at is None:
            add(
                ActionKind.STALE,
                f"No activity logged since the deal was created {(now - deal.created_at).days} days ago.",
            )
        else:
            add(ActionKind.STALE, f"No activity logged for {(now - deal.last_activity_at).days} days.")
    if deal.f_contact:
        add(ActionKind.NO_CONTACT, "The deal has no contact person.")
    return reasons


def _item(deal, *, now, today, threshold) -> dict[str, Any]:
    reasons = _reasons(deal, now=now, today=today, threshold=threshold)
    best = reasons[0] if reasons else None
    return {
        "deal": {
            "id": deal.pk,
            "title": deal.title,
            "amount": deal.amount,
            "currency": deal.currency,
            "stage": {"id": deal.stage_id, "name": deal.stage.name},
            "owner": deal.owner_id,
            "expected_close_date": deal.expected_close_date,
        },
        "action": best["kind"] if best else None,
        "priority": best["priority"] if best else None,
        "reason": best["reason"] if best else None,
        "suggested_action": best["suggested_action"] if best else None,
        "score": deal.score,
        "reasons": reasons,
    }


class NextActions:
    """The deals needing attention, ranked, and a loader that turns a page of them into items."""

    def __init__(self, actor: Actor, *, now: datetime | None = None, tz=None):
        self.actor = require_actor(actor)
        self.now = now or timezone.now()
        self.today = self.now.astimezone(tz).date() if tz else self.now.date()
        self.visible = Deal.objects.visible_to(self.actor, DEAL_VIEW)
        self.threshold = high_value_threshold(self.visible)

    def ranked(self, deals: QuerySet | None = None) -> QuerySet:
        deals = self.visible if deals is None else deals
        return (
            flagged(deals, now=self.now, today=self.today, threshold=self.threshold)
            .filter(score__gt=0)
            .order_by("-top", "-score", "-amount", "pk")
        )

    def mine(self) -> QuerySet:
        """The caller's own deals (those he owns, within his scope)."""
        owner = user_of(self.actor)
        return self.ranked(self.visible.filter(owner_id=owner))

    def load(self, deals) -> list[dict[str, Any]]:
        return [_item(deal, now=self.now, today=self.today, threshold=self.threshold) for deal in deals]

    def of_deal(self, deal_id: int) -> list[dict[str, Any]] | None:
        """The reasons of one deal the caller may see (most urgent first), or None when he may not see it."""
        deal = flagged(
            self.visible.filter(pk=deal_id), now=self.now, today=self.today, threshold=self.threshold
        ).first()
        if deal is None:
            if self.visible.filter(pk=deal_id).exists():
                return []  # closed: nothing to do
            return None
        return _reasons(deal, now=self.now, today=self.today, threshold=self.threshold)
