"""Leads: create, edit, delete, qualify and disqualify. Conversion is in :mod:`crm.services.conversion`."""

from __future__ import annotations

from django.db import transaction

from config.api.errors import ValidationFailed
from integrations import outbox
from rbac.actor import Actor, require_actor, user_of

from .. import custom_fields
from ..choices import LeadStatus, RecordType
from ..errors import InvalidLeadTransition
from ..models import Lead
from ._common import apply_update
from ._common import keep_in_reach as _keep_in_reach
from ._common import set_tags as _set_tags

# --- Leads ---

LEAD_EDITABLE_STATUSES = {LeadStatus.NEW, LeadStatus.CONTACTED}


@transaction.atomic
def lead_create(
    *, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields
) -> Lead:
    require_actor(actor)
    fields.setdefault("owner_id", user_of(actor))
    status = fields.get("status", LeadStatus.NEW)
    if status not in LEAD_EDITABLE_STATUSES:
        raise InvalidLeadTransition(f"A new lead starts as new or contacted, not {status}.", field="status")
    if "email" in fields:
        fields["email"] = (fields["email"] or "").strip().lower()
    lead = Lead(**fields)
    lead.custom_fields = custom_fields.clean_values(RecordType.LEAD, custom_fields_values)
    _keep_in_reach(actor, "crm.lead.update", lead.owner_id)
    lead.save()
    _set_tags(lead, tags, actor=actor)
    outbox.record("lead.created", subject=lead, payload=outbox.snapshot(lead), actor=actor)
    return lead


@transaction.atomic
def lead_update(
    *, lead: Lead, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields
) -> Lead:
    require_actor(actor)
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    if "status" in fields and fields["status"] != lead.status:
        if lead.status == LeadStatus.CONVERTED or fields["status"] not in LEAD_EDITABLE_STATUSES:
            raise InvalidLeadTransition(
                "Use the qualify, disqualify or convert actions to change this status.", field="status"
            )
    if "email" in fields:
        fields["email"] = (fields["email"] or "").strip().lower()
    changes = apply_update(
        lead,
        record_type=RecordType.LEAD,
        permission="crm.lead.update",
        actor=actor,
        fields=fields,
        custom_fields_values=custom_fields_values,
    )
    if changes:
        lead.save(update_fields=[*(Lead._meta.get_field(name).name for name in changes), "updated_at"])
    tag_names = _set_tags(lead, tags, actor=actor)
    if tag_names is not None:
        changes["tags"] = tag_names
    if changes:
        outbox.record("lead.updated", subject=lead, payload={"id": lead.pk, "changes": changes}, actor=actor)
    return lead


@transaction.atomic
def lead_delete(*, lead: Lead, actor: Actor) -> None:
    require_actor(actor)
    payload = outbox.snapshot(lead)
    outbox.record("lead.deleted", subject=lead, payload=payload, actor=actor)
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
