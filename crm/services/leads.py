"""Leads: create, edit, delete, qualify and disqualify. Conversion is in :mod:`crm.services.conversion`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from config.api.errors import ValidationFailed
from integrations import outbox
from rbac.actor import Actor, keep_in_reach, require_actor

from .. import custom_fields
from ..choices import LeadStatus, RecordType
from ..errors import InvalidLeadTransition
from ..models import Lead
from ..permissions import LEAD_UPDATE
from ..records import UNSET, given, owner_for, record_event, record_update, set_tags

# --- Leads ---

LEAD_EDITABLE_STATUSES = {LeadStatus.NEW, LeadStatus.CONTACTED}


def _email(value: str | None) -> str:
    return (value or "").strip().lower()


@transaction.atomic
def lead_create(
    *,
    actor: Actor,
    name: str,
    email: str = UNSET,
    phone: str = UNSET,
    company_name: str = UNSET,
    source: str = UNSET,
    status: str = UNSET,
    score: int = UNSET,
    priority: str = UNSET,
    estimated_value: Decimal | None = UNSET,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Lead:
    """A new lead, owned by ``owner_id`` (default: the actor's user), which must stay within the actor's reach
    (``crm.lead.update``). It starts as new or contacted."""
    require_actor(actor)
    if status is not UNSET and status not in LEAD_EDITABLE_STATUSES:
        raise InvalidLeadTransition(f"A new lead starts as new or contacted, not {status}.", field="status")
    fields = given(
        phone=phone,
        company_name=company_name,
        source=source,
        status=status,
        score=score,
        priority=priority,
        estimated_value=estimated_value,
        email=email if email is UNSET else _email(email),
    )
    lead = Lead(name=name, owner_id=owner_for(actor, owner_id), **fields)
    lead.custom_fields = custom_fields.clean_values(RecordType.LEAD, custom_fields_values)
    keep_in_reach(actor, LEAD_UPDATE, lead.owner_id)
    lead.save()
    set_tags(lead, tags, actor=actor)
    record_event("created", lead, actor=actor)
    return lead


@transaction.atomic
def lead_update(
    *,
    lead: Lead,
    actor: Actor,
    name: str = UNSET,
    email: str = UNSET,
    phone: str = UNSET,
    company_name: str = UNSET,
    source: str = UNSET,
    status: str = UNSET,
    score: int = UNSET,
    priority: str = UNSET,
    estimated_value: Decimal | None = UNSET,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Lead:
    """Edit a lead. Its status moves between new and contacted here; qualify, disqualify and convert are actions."""
    require_actor(actor)
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    if status is not UNSET and status != lead.status:
        if lead.status == LeadStatus.CONVERTED or status not in LEAD_EDITABLE_STATUSES:
            raise InvalidLeadTransition(
                "Use the qualify, disqualify or convert actions to change this status.", field="status"
            )
    fields = given(
        name=name,
        phone=phone,
        company_name=company_name,
        source=source,
        status=status,
        score=score,
        priority=priority,
        estimated_value=estimated_value,
        owner_id=owner_id,
        email=email if email is UNSET else _email(email),
    )
    changes = record_update(
        lead,
        actor=actor,
        permission=LEAD_UPDATE,
        record_type=RecordType.LEAD,
        fields=fields,
        custom_fields_values=custom_fields_values,
        tags=tags,
    )
    record_event("updated", lead, actor=actor, changes=changes)
    return lead


@transaction.atomic
def lead_delete(*, lead: Lead, actor: Actor) -> None:
    require_actor(actor)
    record_event("deleted", lead, actor=actor)
    lead.delete()


@transaction.atomic
def lead_qualify(*, lead: Lead, actor: Actor) -> Lead:
    require_actor(actor)
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    if lead.status == LeadStatus.CONVERTED:
        raise InvalidLeadTransition("A converted lead cannot be qualified again.")
    before = lead.status
    lead.status, lead.disqualified_reason = LeadStatus.QUALIFIED, ""
    lead.save(update_fields=["status", "disqualified_reason", "updated_at"])
    outbox.record("lead.qualified", subject=lead, payload={"id": lead.pk, "from": before}, actor=actor)
    return lead


@transaction.atomic
def lead_disqualify(*, lead: Lead, actor: Actor, reason: str) -> Lead:
    require_actor(actor)
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    if lead.status == LeadStatus.CONVERTED:
        raise InvalidLeadTransition("A converted lead cannot be disqualified.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason.", field="reason", code="required")
    before = lead.status
    lead.status, lead.disqualified_reason = LeadStatus.UNQUALIFIED, reason[:500]
    lead.save(update_fields=["status", "disqualified_reason", "updated_at"])
    outbox.record(
        "lead.disqualified", subject=lead, payload={"id": lead.pk, "from": before, "reason": reason}, actor=actor
    )
    return lead
