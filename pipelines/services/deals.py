"""Deals: create (also from a converted lead), edit, delete. Stage moves and closing are in :mod:`.moves`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.features import Limit
from billing.services import enforce_limit
from crm import custom_fields
from crm.choices import RecordType
from crm.records import UNSET, given, owner_for, record_event, record_update, set_tags
from rbac.actor import Actor, keep_in_reach, require_actor
from tenants.selectors import current_organization

from ..choices import DealStatus, StageKind
from ..errors import PipelineArchived, StageNotInPipeline, StageNotOpen
from ..models import Deal, Pipeline, Stage
from ..permissions import DEAL_UPDATE
from ._common import first_open_stage, history_row, key_share
from .pipelines import pipeline_create_default


@transaction.atomic
def deal_create(
    *,
    actor: Actor,
    title: str,
    pipeline: Pipeline | None = None,
    stage: Stage | None = None,
    amount: Decimal | int = 0,
    currency: str | None = None,
    contact_id: int | None = None,
    company_id: int | None = None,
    expected_close_date: date | None = None,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Deal:
    """A new open deal in ``stage`` (default: the first open stage of ``pipeline``, default: the default one),
    owned by ``owner_id`` (default: the actor's user), which must stay within the actor's reach
    (``pipelines.deal.update``; a deal of one's own always is). Counts against the plan's deal limit."""
    require_actor(actor)
    owner = owner_for(actor, owner_id)
    keep_in_reach(actor, DEAL_UPDATE, owner)
    return _deal_insert(
        actor=actor,
        title=title,
        pipeline=pipeline,
        stage=stage,
        amount=amount,
        currency=currency,
        fields={
            "owner_id": owner,
            "contact_id": contact_id,
            "company_id": company_id,
            "expected_close_date": expected_close_date,
        },
        tags=tags,
        custom_fields_values=custom_fields_values,
    )


def _deal_insert(
    *,
    actor: Actor,
    title: str,
    pipeline: Pipeline | None,
    stage: Stage | None,
    amount: Decimal | int,
    currency: str | None,
    fields: dict[str, Any],
    tags: list[str] | None,
    custom_fields_values: dict[str, Any] | None,
    source: dict[str, Any] | None = None,
) -> Deal:
    if pipeline is None:
        pipeline = stage.pipeline if stage is not None else pipeline_create_default(actor=actor)
    pipeline = Pipeline.objects.get(pk=pipeline.pk)
    if pipeline.is_archived:
        raise PipelineArchived("No new deals go into an archived pipeline.")
    if stage is None:
        stage = first_open_stage(pipeline.pk)
    elif stage.pipeline_id != pipeline.pk:
        raise StageNotInPipeline(field="stage")
    elif stage.kind != StageKind.OPEN:
        raise StageNotOpen("A new deal starts in an open stage; win or lose it afterwards.", field="stage")
    stage = key_share(stage.pk) if stage is not None else None
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
    set_tags(deal, tags, actor=actor)
    history_row(deal.pk, None, stage, actor=actor).save()
    record_event("created", deal, actor=actor, **({"source": source} if source else {}))
    return deal


@transaction.atomic
def deal_create_from_lead(*, lead: Any, actor: Actor) -> Deal:
    """The deal of a converted lead, in the default pipeline's first open stage, owned by the lead's owner.
    Call it inside the lead conversion's transaction, after ``converted_contact`` / ``converted_company`` are set
    (the conversion itself is authorized by ``crm.lead.convert``). Counts against the plan's deal limit.
    Registered as crm's deal opener (``crm.records.open_deal``) by ``PipelinesConfig.ready``."""
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
        fields={
            "owner_id": lead.owner_id,
            "contact_id": lead.converted_contact_id,
            "company_id": lead.converted_company_id,
        },
        tags=[tag.name for tag in lead.tags.all()],
        custom_fields_values=None,
        source={"lead": lead.pk},
    )


@transaction.atomic
def deal_update(
    *,
    deal: Deal,
    actor: Actor,
    title: str = UNSET,
    amount: Decimal | int = UNSET,
    currency: str = UNSET,
    contact_id: int | None = UNSET,
    company_id: int | None = UNSET,
    expected_close_date: date | None = UNSET,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Deal:
    """Edit a deal's own fields. Stage, pipeline and status change through the move and close actions."""
    require_actor(actor)
    deal = Deal.objects.select_for_update().get(pk=deal.pk)
    fields = given(
        title=title if title is UNSET else title.strip(),
        amount=amount,
        currency=currency if currency is UNSET else currency.upper(),
        contact_id=contact_id,
        company_id=company_id,
        expected_close_date=expected_close_date,
        owner_id=owner_id,
    )
    changes = record_update(
        deal,
        actor=actor,
        permission=DEAL_UPDATE,
        record_type=RecordType.DEAL,
        fields=fields,
        custom_fields_values=custom_fields_values,
        tags=tags,
    )
    record_event("updated", deal, actor=actor, changes=changes)
    return deal


@transaction.atomic
def deal_delete(*, deal: Deal, actor: Actor) -> None:
    require_actor(actor)
    record_event("deleted", deal, actor=actor)
    deal.delete()
