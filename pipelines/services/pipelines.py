"""Pipelines and their stages: create, edit, order, archive, delete."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from config.api.errors import ValidationFailed
from crm.records import UNSET, given
from rbac.actor import Actor, require_actor
from tenants.selectors import current_organization

from ..choices import DEFAULT_PIPELINE_NAME, DealStatus, StageKind
from ..errors import (
    ClosingStageRequired,
    DefaultPipelineProtected,
    InvalidMoveTarget,
    InvalidStageOrder,
    LastOpenStage,
    MoveTargetRequired,
    PipelineArchived,
    PipelineHasDeals,
)
from ..models import Deal, Pipeline, Stage
from ._common import (
    check_probability,
    check_stage_specs,
    default_specs,
    lock_default_pipeline,
    lock_pipeline,
    record_moves,
)


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
    lock_default_pipeline()
    existing = Pipeline.objects.filter(is_default=True).first()
    if existing is not None:
        return existing
    oldest = Pipeline.objects.filter(is_archived=False).order_by("pk").first()
    if oldest is not None:  # pipelines exist but none is the default: the oldest active one becomes it
        oldest.is_default = True
        oldest.save(update_fields=["is_default", "updated_at"])
        return oldest
    return _insert_pipeline(name=DEFAULT_PIPELINE_NAME, currency="USD", specs=default_specs(), is_default=True)


@transaction.atomic
def pipeline_create(
    *,
    actor: Actor,
    name: str,
    currency: str = UNSET,
    stages: list[dict[str, Any]] | None = None,
    is_default: bool = False,
) -> Pipeline:
    """A new pipeline with ``stages`` (in order) or the standard ones, in ``currency`` or else the organization's
    (which new deals in it then default to). Plan gating happens in the API (``Feature.MULTIPLE_PIPELINES``); the
    organization's first pipeline always becomes its default."""
    require_actor(actor)
    if currency is UNSET:
        currency = current_organization().currency
    specs = stages or default_specs()
    check_stage_specs(specs)
    lock_default_pipeline()
    has_default = Pipeline.objects.filter(is_default=True).exists()
    if is_default and has_default:
        Pipeline.objects.filter(is_default=True).update(is_default=False, updated_at=timezone.now())
    return _insert_pipeline(
        name=name.strip(), currency=currency.upper(), specs=specs, is_default=is_default or not has_default
    )


@transaction.atomic
def pipeline_update(*, pipeline: Pipeline, actor: Actor, name: str = UNSET, currency: str = UNSET) -> Pipeline:
    require_actor(actor)
    pipeline = lock_pipeline(pipeline)
    fields = given(
        name=name if name is UNSET else name.strip(), currency=currency if currency is UNSET else currency.upper()
    )
    changes = [name for name, value in fields.items() if getattr(pipeline, name) != value]
    for name in changes:
        setattr(pipeline, name, fields[name])
    if changes:
        pipeline.save(update_fields=[*changes, "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_set_default(*, pipeline: Pipeline, actor: Actor) -> Pipeline:
    require_actor(actor)
    lock_default_pipeline()
    pipeline = lock_pipeline(pipeline)
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
    pipeline = lock_pipeline(pipeline)
    if pipeline.is_default:
        raise DefaultPipelineProtected()
    if not pipeline.is_archived:
        pipeline.is_archived = True
        pipeline.save(update_fields=["is_archived", "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_unarchive(*, pipeline: Pipeline, actor: Actor) -> Pipeline:
    require_actor(actor)
    pipeline = lock_pipeline(pipeline)
    if pipeline.is_archived:
        pipeline.is_archived = False
        pipeline.save(update_fields=["is_archived", "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline, actor: Actor) -> None:
    require_actor(actor)
    pipeline = lock_pipeline(pipeline)
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
    pipeline = lock_pipeline(pipeline)
    check_probability(kind, probability)
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
def stage_update(
    *,
    stage: Stage,
    actor: Actor,
    name: str = UNSET,
    probability: int = UNSET,
    rotting_days: int | None = UNSET,
) -> Stage:
    """Rename, change probability or rotting threshold. The kind is fixed; the order changes with reorder."""
    require_actor(actor)
    lock_pipeline(stage.pipeline)
    stage = Stage.objects.get(pk=stage.pk)
    fields = given(name=name if name is UNSET else name.strip(), probability=probability, rotting_days=rotting_days)
    check_probability(stage.kind, fields.get("probability", stage.probability))
    changes = [name for name, value in fields.items() if getattr(stage, name) != value]
    for name in changes:
        setattr(stage, name, fields[name])
    if changes:
        stage.save(update_fields=changes)
    return stage


@transaction.atomic
def stage_reorder(*, pipeline: Pipeline, actor: Actor, stage_ids: list[int]) -> list[Stage]:
    """Put the pipeline's stages in this order, positions 0..n-1, in one statement."""
    require_actor(actor)
    pipeline = lock_pipeline(pipeline)
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
    pipeline = lock_pipeline(stage.pipeline)
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
        now = timezone.now()
        Deal.objects.filter(pk__in=[pk for pk, _entered in held]).update(
            stage=move_to, stage_entered_at=now, updated_at=now
        )
        record_moves([(pk, stage, move_to, DealStatus.OPEN, now - entered) for pk, entered in held], actor=actor)
    position = stage.position
    stage.delete()
    Stage.objects.filter(pipeline=pipeline, position__gt=position).update(position=F("position") - 1)
    return len(held)
