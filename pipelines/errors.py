"""Business-rule errors of pipelines and deals, each with a stable code."""

from config.api.errors import Conflict, ValidationFailed


class DealAlreadyClosed(Conflict):
    code = "deal_already_closed"
    title = "The deal is already won or lost."


class DealClosed(Conflict):
    code = "deal_closed"
    title = "A won or lost deal moves only after it is reopened."


class DealNotClosed(Conflict):
    code = "deal_not_closed"
    title = "Only a won or lost deal can be reopened."


class StageNotInPipeline(ValidationFailed):
    code = "stage_not_in_pipeline"
    title = "The stage does not belong to the deal's pipeline."


class StageNotOpen(ValidationFailed):
    code = "stage_not_open"
    title = "Choose an open stage."


class PipelineArchived(Conflict):
    code = "pipeline_archived"
    title = "The pipeline is archived."


class DefaultPipelineProtected(Conflict):
    code = "default_pipeline_protected"
    title = "The default pipeline cannot be archived or deleted; make another pipeline the default first."


class PipelineHasDeals(Conflict):
    code = "pipeline_has_deals"
    title = "The pipeline still holds deals."


class LastOpenStage(Conflict):
    code = "last_open_stage"
    title = "A pipeline keeps at least one open stage."


class ClosingStageRequired(Conflict):
    code = "closing_stage_required"
    title = "A pipeline keeps exactly one won stage and one lost stage."


class StageHasDeals(Conflict):
    code = "stage_has_deals"
    title = "The stage holds deals."


class MoveTargetRequired(ValidationFailed):
    code = "move_to_required"
    title = "The stage holds deals: choose another stage of the same pipeline to move them to (move_to)."


class InvalidMoveTarget(ValidationFailed):
    code = "invalid_move_target"
    title = "Deals can only move to another stage of the same kind in the same pipeline."


class InvalidStageOrder(ValidationFailed):
    code = "invalid_stage_order"
    title = "List every stage of the pipeline exactly once."


class InvalidProbability(ValidationFailed):
    code = "invalid_probability"
    title = "A won stage has probability 100 and a lost stage 0; open stages 0 to 100."
