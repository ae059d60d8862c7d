"""What the pipelines, stages and deals services share: locks, stage checks, the stage history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from config.api.errors import ValidationFailed
from config.db import connection
from config.locks import LockNamespace, xact_lock
from integrations import outbox
from rbac.actor import Actor, actor_identity

from ..choices import DEFAULT_STAGES, StageKind
from ..errors import ClosingStageRequired, InvalidProbability, LastOpenStage
from ..models import Pipeline, Stage, StageChange


def lock_default_pipeline() -> None:
    xact_lock(LockNamespace.DEFAULT_PIPELINE, connection.schema_name)


def lock_pipeline(pipeline: Pipeline) -> Pipeline:
    return Pipeline.objects.select_for_update().get(pk=pipeline.pk)


def key_share(stage_id: int) -> Stage | None:
    """The stage, locked against deletion until this transaction ends (moves into it do not block each other)."""
    table = Stage._meta.db_table
    found = list(Stage.objects.raw(f'SELECT * FROM "{table}" WHERE id = %s FOR KEY SHARE', [stage_id]))
    return found[0] if found else None


def first_open_stage(pipeline_id: int) -> Stage | None:
    return Stage.objects.filter(pipeline_id=pipeline_id, kind=StageKind.OPEN).order_by("position").first()


def check_probability(kind: str, probability: int) -> None:
    if not 0 <= probability <= 100:
        raise InvalidProbability("Probability is a percentage from 0 to 100.", field="probability")
    if kind == StageKind.WON and probability != 100:
        raise InvalidProbability("A won stage has probability 100.", field="probability")
    if kind == StageKind.LOST and probability != 0:
        raise InvalidProbability("A lost stage has probability 0.", field="probability")


def check_stage_specs(specs: list[dict[str, Any]]) -> None:
    kinds = [spec.get("kind", StageKind.OPEN) for spec in specs]
    if StageKind.OPEN not in kinds:
        raise ValidationFailed(LastOpenStage.title, field="stages", code=LastOpenStage.code)
    if kinds.count(StageKind.WON) != 1 or kinds.count(StageKind.LOST) != 1:
        raise ValidationFailed(ClosingStageRequired.title, field="stages", code=ClosingStageRequired.code)
    for spec in specs:
        check_probability(spec.get("kind", StageKind.OPEN), spec.get("probability", 0))


def default_specs() -> list[dict[str, Any]]:
    return [
        {"name": name, "probability": probability, "kind": kind, "rotting_days": rotting}
        for name, probability, kind, rotting in DEFAULT_STAGES
    ]


# --- the stage history: one row and one deal.stage_changed event per move ---


def stage_payload(
    deal_id: int, from_stage: Stage | None, to_stage: Stage, status: str, spent: timedelta | None
) -> dict[str, Any]:
    """The payload of ``deal.stage_changed`` (integrations/events.py); the deal's timeline shows the move from it."""
    return {
        "id": deal_id,
        "pipeline": to_stage.pipeline_id,
        "from_stage": from_stage.pk if from_stage else None,
        "from_stage_name": from_stage.name if from_stage else None,
        "to_stage": to_stage.pk,
        "to_stage_name": to_stage.name,
        "status": status,
        "seconds_in_previous_stage": round(spent.total_seconds()) if spent is not None else None,
    }


def history_row(deal_id: int, from_stage: Stage | None, to_stage: Stage, *, actor: Actor, spent=None) -> StageChange:
    return StageChange(
        deal_id=deal_id,
        from_stage=from_stage,
        to_stage=to_stage,
        from_stage_name=from_stage.name if from_stage else "",
        to_stage_name=to_stage.name,
        changed_by_id=actor_identity(actor)[0],
        time_in_previous_stage=spent,
    )


def record_moves(moves: list[tuple[int, Stage, Stage, str, timedelta]], *, actor: Actor) -> None:
    """The history rows and ``deal.stage_changed`` events of deals moved ``(deal id, from, to, status, time
    spent)``: inserted together, one INSERT each (a stage deletion may move thousands)."""
    StageChange.objects.bulk_create(
        [history_row(pk, source, target, actor=actor, spent=spent) for pk, source, target, _status, spent in moves]
    )
    outbox.record_many(
        "deal.stage_changed",
        subject_type="deal",
        actor=actor,
        items=[(pk, stage_payload(pk, source, target, status, spent)) for pk, source, target, status, spent in moves],
    )
