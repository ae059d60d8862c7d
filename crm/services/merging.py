"""Merging duplicates: every reference moves to the survivor, then the duplicate is deleted, atomically."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Model

from integrations import outbox
from rbac.actor import Actor, require_actor

from ..errors import MergeSameRecord
from ..models import Activity, Company, Contact, Lead
from ..records import references_to

# Fields the survivor takes from the duplicate when its own is blank.
CONTACT_FILLABLE = ("first_name", "last_name", "email", "phone", "job_title", "company_id", "source", "owner_id")
COMPANY_FILLABLE = (
    "domain",
    "industry",
    "size",
    "phone",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "owner_id",
)


def _lock_pair(model, survivor, duplicate):
    if survivor.pk == duplicate.pk:
        raise MergeSameRecord(field="duplicate")
    locked = {row.pk: row for row in model.objects.select_for_update().filter(pk__in=[survivor.pk, duplicate.pk])}
    return locked[survivor.pk], locked[duplicate.pk]


def _ids(queryset) -> list[int]:
    return list(queryset.values_list("pk", flat=True))


def _move(queryset, **values) -> list[int]:
    """Point the rows of ``queryset`` elsewhere; returns their ids (for the event)."""
    ids = _ids(queryset)
    if ids:
        queryset.model.objects.filter(pk__in=ids).update(**values)
    return ids


def _move_references(model: type[Model], survivor: Model, duplicate: Model) -> dict[str, list[int]]:
    """Point the other apps' references (deals) from the duplicate to the survivor (:mod:`crm.records`)."""
    return {
        reference.name: _move(
            reference.model._default_manager.filter(**{reference.field: duplicate}), **{reference.field: survivor}
        )
        for reference in references_to(model)
    }


def _fill_blanks(survivor, duplicate, fields: tuple[str, ...]) -> dict[str, list]:
    filled = {}
    for name in fields:
        mine, theirs = getattr(survivor, name), getattr(duplicate, name)
        if mine in ("", None) and theirs not in ("", None):
            setattr(survivor, name, theirs)
            filled[name] = [mine, theirs]
    return filled


def _merge_tags_and_custom_fields(survivor, duplicate) -> dict[str, Any]:
    extra = {}
    tags = {tag.pk: tag for tag in duplicate.tags.all()}
    mine = {tag.pk for tag in survivor.tags.all()}
    added = [tag for pk, tag in tags.items() if pk not in mine]
    if added:
        survivor.tags.add(*added)
        extra["tags"] = sorted(tag.name for tag in [*survivor.tags.all()])
    merged = {**duplicate.custom_fields, **survivor.custom_fields}
    if merged != survivor.custom_fields:
        extra["custom_fields"] = [survivor.custom_fields, merged]
        survivor.custom_fields = merged
    return extra


@transaction.atomic
def contact_merge(*, survivor: Contact, duplicate: Contact, actor: Actor) -> Contact:
    """Merge ``duplicate`` into ``survivor``: its activities, deals and converted leads point to the survivor,
    the survivor's blank fields take the duplicate's values, tags are united and custom fields combined (the
    survivor's values win). The duplicate is deleted. One ``contact.merged`` event on the survivor."""
    require_actor(actor)
    survivor, duplicate = _lock_pair(Contact, survivor, duplicate)
    moved = {
        "activities": _move(Activity.objects.filter(contact=duplicate), contact=survivor),
        **_move_references(Contact, survivor, duplicate),
        "leads": _move(Lead.objects.filter(converted_contact=duplicate), converted_contact=survivor),
    }
    snapshot = outbox.snapshot(duplicate)
    filled = _fill_blanks(survivor, duplicate, CONTACT_FILLABLE)
    combined = _merge_tags_and_custom_fields(survivor, duplicate)
    duplicate.delete()  # before the survivor may take its e-mail (unique)
    survivor.save()
    payload = {"id": survivor.pk, "merged": snapshot, "moved": moved, "changes": {**filled, **combined}}
    outbox.record("contact.merged", subject=survivor, payload=payload, actor=actor)
    return survivor


@transaction.atomic
def company_merge(*, survivor: Company, duplicate: Company, actor: Actor) -> Company:
    """Merge ``duplicate`` into ``survivor``: its contacts, activities, deals and converted leads point to the
    survivor; blanks filled, tags united, custom fields combined as for contacts. The duplicate is deleted.
    One ``company.merged`` event on the survivor."""
    require_actor(actor)
    survivor, duplicate = _lock_pair(Company, survivor, duplicate)
    moved = {
        "contacts": _move(Contact.objects.filter(company=duplicate), company=survivor),
        "activities": _move(Activity.objects.filter(company=duplicate), company=survivor),
        **_move_references(Company, survivor, duplicate),
        "leads": _move(Lead.objects.filter(converted_company=duplicate), converted_company=survivor),
    }
    snapshot = outbox.snapshot(duplicate)
    filled = _fill_blanks(survivor, duplicate, COMPANY_FILLABLE)
    combined = _merge_tags_and_custom_fields(survivor, duplicate)
    duplicate.delete()  # before the survivor may take its domain (unique)
    survivor.save()
    payload = {"id": survivor.pk, "merged": snapshot, "moved": moved, "changes": {**filled, **combined}}
    outbox.record("company.merged", subject=survivor, payload=payload, actor=actor)
    return survivor
