"""Writes of pipelines, stages and deals: plain functions, keyword-only, atomic, each taking a typed actor
(:mod:`rbac.actor`), checking scope and recording its domain event. Deals share crm's record kernel
(:mod:`crm.records`): one scope rule, one update helper, one event payload, one timeline.

Locking, so concurrent requests leave a consistent state:

* a deal's stage changes lock the deal row (``SELECT ... FOR UPDATE``), so two moves of one deal serialize and
  each history row starts where the previous one ended;
* structural changes of a pipeline (add, reorder, delete stages) lock the pipeline row;
* a move takes ``FOR KEY SHARE`` on its target stage and a stage deletion ``FOR UPDATE`` on the stage it
  deletes, so a deal can never be moved into a stage that is being deleted;
* changes of the default pipeline take a transaction-scoped advisory lock.
"""

from .deals import deal_create, deal_create_from_lead, deal_delete, deal_update
from .moves import deal_mark_lost, deal_mark_won, deal_move_stage, deal_reopen
from .pipelines import (
    pipeline_archive,
    pipeline_create,
    pipeline_create_default,
    pipeline_delete,
    pipeline_set_default,
    pipeline_unarchive,
    pipeline_update,
    stage_create,
    stage_delete,
    stage_reorder,
    stage_update,
)

__all__ = [
    "deal_create",
    "deal_create_from_lead",
    "deal_delete",
    "deal_mark_lost",
    "deal_mark_won",
    "deal_move_stage",
    "deal_reopen",
    "deal_update",
    "pipeline_archive",
    "pipeline_create",
    "pipeline_create_default",
    "pipeline_delete",
    "pipeline_set_default",
    "pipeline_unarchive",
    "pipeline_update",
    "stage_create",
    "stage_delete",
    "stage_reorder",
    "stage_update",
]
