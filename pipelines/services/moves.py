"""A deal's way through its pipeline: stage moves, won, lost, reopened. Each move writes one history row and one
``deal.stage_changed`` event (the deal's timeline shows the move once, from the event); closing and reopening
add ``deal.won`` / ``deal.lost`` / ``deal.reopened``."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from config.api.errors import ValidationFailed
from integrations import outbox
from rbac.actor import Actor, require_actor, require_reach

from ..choices import STATUS_BY_KIND, DealStatus, StageKind
from ..errors import (
    ClosingStageRequired,
    DealAlreadyClosed,
    DealClosed,
    DealNotClosed,
    StageNotInPipeline,
    StageNotOpen,
)
from ..models import Deal, Stage, StageChange
from ..permissions import DEAL_CLOSE
from ._common import first_open_stage, key_share, record_moves


def _locked(deal: Deal) -> Deal:
    """The deal, row-locked until the transaction ends. No join here: after waiting for the lock PostgreSQL
    re-checks only the locked row, so a join against the stage it has just left would drop the row."""
    locked = Deal.objects.select_for_update().get(pk=deal.pk)
    locked.stage = Stage.objects.get(pk=locked.stage_id)
    return locked


def _enter_stage(deal: Deal, stage: Stage, *, actor: Actor, reason: str = "") -> Deal:
    """Move a locked deal into ``stage``: status follows the stage kind; history row and events."""
    now = timezone.now()
    previous, before_status = deal.stage, deal.status
    status = STATUS_BY_KIND[StageKind(stage.kind)]
    reason = (reason or "").strip()
    if status == DealStatus.LOST and not reason:
        raise ValidationFailed("Give the reason the deal was lost.", field="reason", code="required")
    if status != before_status:
        require_reach(actor, DEAL_CLOSE, owner_id=deal.owner_id)
    spent = now - deal.stage_entered_at
    deal.stage, deal.stage_entered_at, deal.status = stage, now, status
    deal.won_at = now if status == DealStatus.WON else None
    deal.lost_at = now if status == DealStatus.LOST else None
    deal.lost_reason = reason[:500] if status == DealStatus.LOST else ""
    deal.save(update_fields=["stage", "stage_entered_at", "status", "won_at", "lost_at", "lost_reason", "updated_at"])
    record_moves([(deal.pk, previous, stage, status, spent)], actor=actor)
    if status == before_status:
        return deal
    summary = {"id": deal.pk, "stage": stage.pk, "amount": deal.amount, "currency": deal.currency}
    if status == DealStatus.WON:
        outbox.record("deal.won", subject=deal, payload={**summary, "won_at": now}, actor=actor)
    elif status == DealStatus.LOST:
        outbox.record("deal.lost", subject=deal, payload={**summary, "reason": deal.lost_reason}, actor=actor)
    else:
        outbox.record("deal.reopened", subject=deal, payload={**summary, "previous_status": before_status}, actor=actor)
    return deal


def _stage_of(deal: Deal, stage_id: int) -> Stage:
    stage = key_share(stage_id)
    if stage is None or stage.pipeline_id != deal.pipeline_id:
        raise StageNotInPipeline(field="stage")
    return stage


@transaction.atomic
def deal_move_stage(*, deal: Deal, stage: Stage, actor: Actor, reason: str = "") -> Deal:
    """Move an open deal to another stage of its pipeline. Into the won or lost stage it is won or lost (a reason
    is required for lost; closing needs ``pipelines.deal.close`` besides ``move_stage``). A won or lost deal does
    not move: it is reopened explicitly first (:func:`deal_reopen`), so no move reopens one unnoticed (409
    ``deal_closed``). Moving a deal to the stage it is in changes nothing."""
    require_actor(actor)
    deal = _locked(deal)
    target = _stage_of(deal, stage.pk)
    if target.pk == deal.stage_id:
        return deal
    if deal.status != DealStatus.OPEN:
        raise DealClosed(f"The deal is {deal.status}: reopen it (POST /api/v1/deals/{deal.pk}/reopen/) to move it.")
    return _enter_stage(deal, target, actor=actor, reason=reason)


def _closing_stage(deal: Deal, kind: str) -> Stage:
    stage_id = Stage.objects.filter(pipeline_id=deal.pipeline_id, kind=kind).values_list("pk", flat=True).first()
    if stage_id is None:
        raise ClosingStageRequired(f"The pipeline has no {kind} stage.")
    return _stage_of(deal, stage_id)


@transaction.atomic
def deal_mark_won(*, deal: Deal, actor: Actor) -> Deal:
    require_actor(actor)
    deal = _locked(deal)
    if deal.status != DealStatus.OPEN:
        raise DealAlreadyClosed()
    return _enter_stage(deal, _closing_stage(deal, StageKind.WON), actor=actor)


@transaction.atomic
def deal_mark_lost(*, deal: Deal, actor: Actor, reason: str) -> Deal:
    require_actor(actor)
    deal = _locked(deal)
    if deal.status != DealStatus.OPEN:
        raise DealAlreadyClosed()
    if not (reason or "").strip():
        raise ValidationFailed("Give the reason the deal was lost.", field="reason", code="required")
    return _enter_stage(deal, _closing_stage(deal, StageKind.LOST), actor=actor, reason=reason)


@transaction.atomic
def deal_reopen(*, deal: Deal, actor: Actor, stage: Stage | None = None) -> Deal:
    """Reopen a won or lost deal into ``stage``, else the last open stage it was in, else the first open one."""
    require_actor(actor)
    deal = _locked(deal)
    if deal.status == DealStatus.OPEN:
        raise DealNotClosed()
    if stage is None:
        last = (
            StageChange.objects.filter(deal=deal, to_stage__pipeline_id=deal.pipeline_id, to_stage__kind=StageKind.OPEN)
            .order_by("-changed_at", "-pk")
            .values_list("to_stage_id", flat=True)
            .first()
        )
        first = first_open_stage(deal.pipeline_id)
        stage_id = last or (first.pk if first is not None else None)
        if stage_id is None:
            raise StageNotOpen("The pipeline has no open stage to reopen into.", field="stage")
    else:
        stage_id = stage.pk
    target = _stage_of(deal, stage_id)
    if target.kind != StageKind.OPEN:
        raise StageNotOpen("Reopen into an open stage.", field="stage")
    return _enter_stage(deal, target, actor=actor)
