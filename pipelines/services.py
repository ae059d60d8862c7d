"""Writes of pipelines, stages and deals. Every function is atomic, checks scope, and records its domain event.

Locking, so concurrent requests leave a consistent state:

* a deal's stage changes lock the deal row (``SELECT ... FOR UPDATE``), so two moves of one deal serialize and
  each history row starts where the previous one ended;
* structural changes of a pipeline (add, reorder, delete stages) lock the pipeline row;
* a move takes ``FOR KEY SHARE`` on its target stage and a stage deletion ``FOR UPDATE`` on the stage it
  deletes, so a deal can never be moved into a stage that is being deleted;
* changes of the default pipeline take a transaction-scoped advisory lock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from billing.features import Limit
from billing.services import enforce_limit
from config.api.errors import ValidationFailed
from config.locks import LockNamespace, xact_lock
from crm import custom_fields
from crm.choices import RecordType
from crm.tagging import tags_named
from integrations import outbox
from rbac.actor import Actor, actor_identity, keep_in_reach, require_actor, require_reach, user_of
from tenants.selectors import current_organization

from .choices import DEFAULT_PIPELINE_NAME, DEFAULT_STAGES, STATUS_BY_KIND, DealStatus, StageKind
from .errors import (
    ClosingStageRequired,
    DealAlreadyClosed,
    DealClosed,
    DealNotClosed,
    DefaultPipelineProtected,
    InvalidMoveTarget,
    InvalidProbability,
    InvalidStageOrder,
    LastOpenStage,
    MoveTargetRequired,
    PipelineArchived,
    PipelineHasDeals,
    StageNotInPipeline,
    StageNotOpen,
)
from .models import Deal, Pipeline, Stage, StageChange
from .permissions import DEAL_CLOSE, DEAL_UPDATE

# --- helpers ---


def _lock_default_pipeline() -> None:
    xact_lock(LockNamespace.DEFAULT_PIPELINE, connection.schema_name)


def _lock_pipeline(pipeline: Pipeline) -> Pipeline:
    return Pipeline.objects.select_for_update().get(pk=pipeline.pk)


def _key_share(stage_id: int) -> Stage | None:
    """The stage, locked against deletion until this transaction ends (moves into it do not block each other)."""
    table = Stage._meta.db_table
    found = list(Stage.objects.raw(f'SELECT * FROM "{table}" WHERE id = %s FOR KEY SHARE', [stage_id]))
    return found[0] if found else None


def _check_probability(kind: str, probability: int) -> None:
    if not 0 <= probability <= 100:
        raise InvalidProbability("Probability is a percentage from 0 to 100.", field="probability")
    if kind == StageKind.WON and probability != 100:
        raise InvalidProbability("A won stage has probability 100.", field="probability")
    if kind == StageKind.LOST and probability != 0:
        raise InvalidProbability("A lost stage has probability 0.", field="probability")


def _check_stage_specs(specs: list[dict[str, Any]]) -> None:
    kinds = [spec.get("kind", StageKind.OPEN) for spec in specs]
    if StageKind.OPEN not in kinds:
        raise ValidationFailed(LastOpenStage.title, field="stages", code=LastOpenStage.code)
    if kinds.count(StageKind.WON) != 1 or kinds.count(StageKind.LOST) != 1:
        raise ValidationFailed(ClosingStageRequired.title, field="stages", code=ClosingStageRequired.code)
    for spec in specs:
        _check_probability(spec.get("kind", StageKind.OPEN), spec.get("probability", 0))


def _default_specs() -> list[dict[str, Any]]:
    return [
        {"name": name, "probability": probability, "kind": kind, "rotting_days": rotting}
        for name, probability, kind, rotting in DEFAULT_STAGES
    ]


def _insert_pipeline(*, name: str, currency: str, specs: list[dict[str, Any]], is_default: bool) -> Pipeline:
    pipeline = Pipeline.objects.create(name=name, currency=currency, is_default=is_default)
    Stage.objects.bulk_create(
        [
            Stage(
                pipeline=pipeline,
                position=index,
                name=spec["name"],
                probability=spec.get("probability", 0),
                kind=spec.get("kind", StageKind.OPEN),
                rotting_days=spec.get("rotting_days"),
            )
            for index, spec in enumerate(specs)
        ]
    )
    return pipeline


# --- pipelines ---


@transaction.atomic
def pipeline_create_default(*, actor: Actor) -> Pipeline:
    """The organization's default pipeline, created with the standard stages when there is none. Idempotent:
    run when an organization is provisioned (``pipelines.receivers``), and by ``manage.py
    ensure_default_pipelines`` for organizations provisioned before that."""
    require_actor(actor)
    existing = Pipeline.objects.filter(is_default=True).first()
    if existing is not None:
        return existing
    _lock_default_pipeline()
    existing = Pipeline.objects.filter(is_default=True).first()
    if existing is not None:
        return existing
    oldest = Pipeline.objects.filter(is_archived=False).order_by("pk").first()
    if oldest is not None:  # pipelines exist but none is the default: the oldest active one becomes it
        oldest.is_default = True
        oldest.save(update_fields=["is_default", "updated_at"])
        return oldest
    return _insert_pipeline(name=DEFAULT_PIPELINE_NAME, currency="USD", specs=_default_specs(), is_default=True)


@transaction.atomic
def pipeline_create(
    *,
    actor: Actor,
    name: str,
    currency: str = "USD",
    stages: list[dict[str, Any]] | None = None,
    is_default: bool = False,
) -> Pipeline:
    """A new pipeline with ``stages`` (in order) or the standard ones. Plan gating happens in the API
    (``Feature.MULTIPLE_PIPELINES``); the organization's first pipeline always becomes its default."""
    require_actor(actor)
    specs = stages or _default_specs()
    _check_stage_specs(specs)
    _lock_default_pipeline()
    has_default = Pipeline.objects.filter(is_default=True).exists()
    if is_default and has_default:
        Pipeline.objects.filter(is_default=True).update(is_default=False, updated_at=timezone.now())
    return _insert_pipeline(
        name=name.strip(), currency=currency.upper(), specs=specs, is_default=is_default or not has_default
    )


@transaction.atomic
def pipeline_update(*, pipeline: Pipeline, actor: Actor, **fields) -> Pipeline:
    require_actor(actor)
    pipeline = _lock_pipeline(pipeline)
    if "name" in fields:
        fields["name"] = fields["name"].strip()
    if "currency" in fields:
        fields["currency"] = fields["currency"].upper()
    changes = outbox.apply_changes(pipeline, fields)
    if changes:
        pipeline.save(update_fields=[*changes, "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_set_default(*, pipeline: Pipeline, actor: Actor) -> Pipeline:
    require_actor(actor)
    _lock_default_pipeline()
    pipeline = _lock_pipeline(pipeline)
    if pipeline.is_archived:
        raise PipelineArchived("Unarchive the pipeline before making it the default.")
    if not pipeline.is_default:
        now = timezone.now()
        Pipeline.objects.filter(is_default=True).update(is_default=False, updated_at=now)
        pipeline.is_default = True
        pipeline.save(update_fields=["is_default", "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_archive(*, pipeline: Pipeline, actor: Actor) -> Pipeline:
    """Hide a pipeline from daily use: its deals stay, no new deal goes into it."""
    require_actor(actor)
    pipeline = _lock_pipeline(pipeline)
    if pipeline.is_default:
        raise DefaultPipelineProtected()
    if not pipeline.is_archived:
        pipeline.is_archived = True
        pipeline.save(update_fields=["is_archived", "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_unarchive(*, pipeline: Pipeline, actor: Actor) -> Pipeline:
    require_actor(actor)
    pipeline = _lock_pipeline(pipeline)
    if pipeline.is_archived:
        pipeline.is_archived = False
        pipeline.save(update_fields=["is_archived", "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline, actor: Actor) -> None:
    require_actor(actor)
    pipeline = _lock_pipeline(pipeline)
    if pipeline.is_default:
        raise DefaultPipelineProtected()
    if Deal.objects.filter(pipeline=pipeline).exists():
        raise PipelineHasDeals("Move or delete its deals first, or archive the pipeline.")
    pipeline.delete()


# --- stages ---


@transaction.atomic
def stage_create(
    *,
    pipeline: Pipeline,
    actor: Actor,
    name: str,
    probability: int = 0,
    kind: str = StageKind.OPEN,
    rotting_days: int | None = None,
    position: int | None = None,
) -> Stage:
    """Add a stage at ``position`` (default: the end); the stages after it move one place down."""
    require_actor(actor)
    pipeline = _lock_pipeline(pipeline)
    _check_probability(kind, probability)
    if kind != StageKind.OPEN:
        detail = f"The pipeline already has its {kind} stage; new stages are open."
        raise ValidationFailed(detail, field="kind", code=ClosingStageRequired.code)
    count = Stage.objects.filter(pipeline=pipeline).count()
    position = count if position is None else min(max(position, 0), count)
    Stage.objects.filter(pipeline=pipeline, position__gte=position).update(position=F("position") + 1)
    return Stage.objects.create(
        pipeline=pipeline,
        name=name.strip(),
        probability=probability,
        kind=kind,
        rotting_days=rotting_days,
        position=position,
    )


@transaction.atomic
def stage_update(*, stage: Stage, actor: Actor, **fields) -> Stage:
    """Rename, change probability or rotting threshold. The kind is fixed; the order changes with reorder."""
    require_actor(actor)
    _lock_pipeline(stage.pipeline)
    stage = Stage.objects.get(pk=stage.pk)
    if "name" in fields:
        fields["name"] = fields["name"].strip()
    _check_probability(stage.kind, fields.get("probability", stage.probability))
    changes = outbox.apply_changes(stage, fields)
    if changes:
        stage.save(update_fields=list(changes))
    return stage


@transaction.atomic
def stage_reorder(*, pipeline: Pipeline, actor: Actor, stage_ids: list[int]) -> list[Stage]:
    """Put the pipeline's stages in this order, positions 0..n-1, in one statement."""
    require_actor(actor)
    pipeline = _lock_pipeline(pipeline)
    current = set(Stage.objects.filter(pipeline=pipeline).values_list("pk", flat=True))
    if len(stage_ids) != len(set(stage_ids)) or set(stage_ids) != current:
        raise InvalidStageOrder(field="stages")
    Stage.objects.filter(pipeline=pipeline).update(
        position=Case(*(When(pk=pk, then=Value(index)) for index, pk in enumerate(stage_ids)))
    )
    return list(Stage.objects.filter(pipeline=pipeline).order_by("position"))


@transaction.atomic
def stage_delete(*, stage: Stage, actor: Actor, move_to: Stage | None = None) -> int:
    """Delete an open stage. Its deals move to ``move_to`` (an open stage of the same pipeline) first, each with
    a history row and a ``deal.stage_changed`` event. The positions after it close the gap. Returns the number of
    deals moved."""
    require_actor(actor)
    pipeline = _lock_pipeline(stage.pipeline)
    stage = Stage.objects.select_for_update().get(pk=stage.pk)
    if stage.kind != StageKind.OPEN:
        raise ClosingStageRequired("The won and lost stages cannot be deleted.")
    if not Stage.objects.filter(pipeline=pipeline, kind=StageKind.OPEN).exclude(pk=stage.pk).exists():
        raise LastOpenStage()
    held = list(Deal.objects.select_for_update().filter(stage=stage).values_list("pk", "stage_entered_at"))
    if held:
        if move_to is None:
            raise MoveTargetRequired(field="move_to")
        if move_to.pipeline_id != pipeline.pk or move_to.pk == stage.pk or move_to.kind != stage.kind:
            raise InvalidMoveTarget(field="move_to")
        _move_all(held, from_stage=stage, to_stage=move_to, actor=actor)
    position = stage.position
    stage.delete()
    Stage.objects.filter(pipeline=pipeline, position__gt=position).update(position=F("position") - 1)
    return len(held)


def _move_all(held: list[tuple[int, Any]], *, from_stage: Stage, to_stage: Stage, actor: Actor) -> None:
    now = timezone.now()
    actor_id = actor_identity(actor)[0]
    ids = [pk for pk, _entered in held]
    Deal.objects.filter(pk__in=ids).update(stage=to_stage, stage_entered_at=now, updated_at=now)
    StageChange.objects.bulk_create(
        [
            StageChange(
                deal_id=pk,
                from_stage=from_stage,
                to_stage=to_stage,
                from_stage_name=from_stage.name,
                to_stage_name=to_stage.name,
                changed_by_id=actor_id,
                time_in_previous_stage=now - entered,
            )
            for pk, entered in held
        ]
    )
    outbox.record_many(
        "deal.stage_changed",
        subject_type=Deal._meta.model_name,
        actor=actor,
        items=[
            (pk, _stage_payload(pk, from_stage, to_stage, DealStatus.OPEN, (now - entered).total_seconds()))
            for pk, entered in held
        ],
    )


def _stage_payload(deal_id: int, from_stage, to_stage: Stage, status: str, seconds: float | None) -> dict[str, Any]:
    return {
        "id": deal_id,
        "pipeline": to_stage.pipeline_id,
        "from_stage": from_stage.pk if from_stage else None,
        "from_stage_name": from_stage.name if from_stage else None,
        "to_stage": to_stage.pk,
        "to_stage_name": to_stage.name,
        "status": status,
        "seconds_in_previous_stage": round(seconds) if seconds is not None else None,
    }


# --- deals ---


def _first_open_stage(pipeline_id: int) -> Stage:
    return Stage.objects.filter(pipeline_id=pipeline_id, kind=StageKind.OPEN).order_by("position").first()


@transaction.atomic
def deal_create(
    *,
    actor: Actor,
    title: str,
    pipeline: Pipeline | None = None,
    stage: Stage | None = None,
    amount: Decimal | int = 0,
    currency: str | None = None,
    tags: list[str] | None = None,
    custom_fields_values: dict | None = None,
    **fields,
) -> Deal:
    """A new open deal in ``stage`` (default: the first open stage of ``pipeline``, default: the default one).
    Counts against the plan's deal limit."""
    require_actor(actor)
    fields.setdefault("owner_id", user_of(actor))
    keep_in_reach(actor, DEAL_UPDATE, fields["owner_id"])
    return _deal_insert(
        actor=actor,
        title=title,
        pipeline=pipeline,
        stage=stage,
        amount=amount,
        currency=currency,
        tags=tags,
        custom_fields_values=custom_fields_values,
        **fields,
    )


def _deal_insert(
    *,
    actor: Actor,
    title: str,
    pipeline: Pipeline | None,
    stage: Stage | None,
    amount: Decimal | int,
    currency: str | None,
    tags: list[str] | None,
    custom_fields_values: dict | None,
    source: dict[str, Any] | None = None,
    **fields,
) -> Deal:
    if pipeline is None:
        pipeline = stage.pipeline if stage is not None else pipeline_create_default(actor=actor)
    pipeline = Pipeline.objects.get(pk=pipeline.pk)
    if pipeline.is_archived:
        raise PipelineArchived("No new deals go into an archived pipeline.")
    if stage is None:
        stage = _first_open_stage(pipeline.pk)
    elif stage.pipeline_id != pipeline.pk:
        raise StageNotInPipeline(field="stage")
    elif stage.kind != StageKind.OPEN:
        raise StageNotOpen("A new deal starts in an open stage; win or lose it afterwards.", field="stage")
    stage = _key_share(stage.pk)
    if stage is None:
        raise StageNotInPipeline(field="stage")
    enforce_limit(organization=current_organization(), limit=Limit.DEALS)
    deal = Deal(
        title=title.strip(),
        amount=amount,
        currency=(currency or pipeline.currency).upper(),
        pipeline=pipeline,
        stage=stage,
        status=DealStatus.OPEN,
        stage_entered_at=timezone.now(),
        **fields,
    )
    deal.custom_fields = custom_fields.clean_values(RecordType.DEAL, custom_fields_values)
    deal.save()
    if tags:
        deal.tags.set(tags_named(tags, actor=actor))
    StageChange.objects.create(
        deal=deal, to_stage=stage, to_stage_name=stage.name, changed_by_id=actor_identity(actor)[0]
    )
    payload = outbox.snapshot(deal)
    if source:
        payload["source"] = source
    outbox.record("deal.created", subject=deal, payload=payload, actor=actor)
    return deal


@transaction.atomic
def deal_create_from_lead(*, lead, actor: Actor) -> Deal:
    """The deal of a converted lead, in the default pipeline's first open stage, owned by the lead's owner.
    Call it inside the lead conversion's transaction, after ``converted_contact`` / ``converted_company`` are set
    (the conversion itself is authorized by ``crm.lead.convert``). Counts against the plan's deal limit."""
    require_actor(actor)
    company = lead.converted_company
    company_name = company.name if company is not None else (lead.company_name or "").strip()
    title = f"{company_name}: {lead.name}" if company_name and company_name != lead.name else lead.name
    return _deal_insert(
        actor=actor,
        title=title[:200],
        pipeline=pipeline_create_default(actor=actor),
        stage=None,
        amount=lead.estimated_value or Decimal("0"),
        currency=None,
        tags=[tag.name for tag in lead.tags.all()],
        custom_fields_values=None,
        source={"lead": lead.pk},
        owner_id=lead.owner_id,
        contact_id=lead.converted_contact_id,
        company_id=lead.converted_company_id,
    )


@transaction.atomic
def deal_update(
    *, deal: Deal, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields
) -> Deal:
    """Edit a deal's own fields. Stage, pipeline and status change through the move and close actions."""
    require_actor(actor)
    deal = Deal.objects.select_for_update().get(pk=deal.pk)
    if "title" in fields:
        fields["title"] = fields["title"].strip()
    if "currency" in fields:
        fields["currency"] = fields["currency"].upper()
    changes = outbox.apply_changes(deal, fields)
    if custom_fields_values is not None:
        values = custom_fields.clean_values(RecordType.DEAL, custom_fields_values, existing=deal.custom_fields)
        changes.update(outbox.apply_changes(deal, {"custom_fields": values}))
    if "owner_id" in changes:
        keep_in_reach(actor, DEAL_UPDATE, deal.owner_id)
    if changes:
        deal.save(update_fields=[*(Deal._meta.get_field(name).name for name in changes), "updated_at"])
    if tags is not None:
        before = sorted(deal.tags.values_list("name", flat=True))
        found = tags_named(tags, actor=actor)
        deal.tags.set(found)
        after = sorted(tag.name for tag in found)
        if before != after:
            changes["tags"] = [before, after]
    if changes:
        outbox.record("deal.updated", subject=deal, payload={"id": deal.pk, "changes": changes}, actor=actor)
    return deal


@transaction.atomic
def deal_delete(*, deal: Deal, actor: Actor) -> None:
    require_actor(actor)
    outbox.record("deal.deleted", subject=deal, payload=outbox.snapshot(deal), actor=actor)
    deal.delete()


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
    StageChange.objects.create(
        deal=deal,
        from_stage=previous,
        to_stage=stage,
        from_stage_name=previous.name,
        to_stage_name=stage.name,
        changed_by_id=actor_identity(actor)[0],
        time_in_previous_stage=spent,
    )
    payload = _stage_payload(deal.pk, previous, stage, status, spent.total_seconds())
    outbox.record("deal.stage_changed", subject=deal, payload=payload, actor=actor)
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
    stage = _key_share(stage_id)
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
        stage_id = last or _first_open_stage(deal.pipeline_id).pk
    else:
        stage_id = stage.pk
    target = _stage_of(deal, stage_id)
    if target.kind != StageKind.OPEN:
        raise StageNotOpen("Reopen into an open stage.", field="stage")
    return _enter_stage(deal, target, actor=actor)
