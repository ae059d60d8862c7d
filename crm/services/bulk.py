"""Bulk changes of leads, contacts and companies: all or nothing, with an error per refused item.

An id the actor cannot reach under the action's permission (another organization's, someone else's under
``own`` scope, or unknown) is ``not_found`` for that item, like a 404 would be. Nothing is written until every
item passed; one event per changed record is recorded in one INSERT.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from integrations import outbox
from rbac.actor import Actor, keep_in_reach, reachable, require_actor

from ..choices import LeadStatus
from ..errors import BulkFailed, InvalidLeadTransition
from ..models import Company, Contact, Lead, Record, Tag
from ..permissions import DELETE, UPDATE
from ..records import updated_payload
from ..tagging import tags_named

MODELS: dict[str, type[Record]] = {"lead": Lead, "contact": Contact, "company": Company}


class BulkFields(TypedDict, total=False):
    """The fields a bulk update sets on every record."""

    owner_id: int | None
    status: str  # leads (new or contacted) and contacts


def _not_found(pk: int) -> dict[str, Any]:
    return {"field": "ids", "id": pk, "code": "not_found", "detail": "Not found."}


def _locked(model, actor: Actor, permission: str, ids: list[int]) -> tuple[list[Record], list[dict[str, Any]]]:
    wanted = list(dict.fromkeys(ids))
    found = {row.pk: row for row in reachable(model, actor, permission).select_for_update().filter(pk__in=wanted)}
    errors = [_not_found(pk) for pk in wanted if pk not in found]
    return [found[pk] for pk in wanted if pk in found], errors


def _item_errors(name: str, record, fields: dict[str, Any]) -> list[dict[str, Any]]:
    if name == "lead" and "status" in fields and fields["status"] != record.status:
        if record.status == LeadStatus.CONVERTED:
            error = InvalidLeadTransition("A converted lead keeps its status.")
            return [{"field": "status", "id": record.pk, "code": error.code, "detail": error.detail}]
    return []


def _tag_rows(model, ids: list[int]) -> dict[int, dict[int, str]]:
    through = model.tags.through
    column = f"{model._meta.model_name}_id"
    found: dict[int, dict[int, str]] = {pk: {} for pk in ids}
    for record_id, tag_id, tag_name in through.objects.filter(**{f"{column}__in": ids}).values_list(
        column, "tag_id", "tag__name"
    ):
        found[record_id][tag_id] = tag_name
    return found


def _apply_tags(
    model, ids: list[int], *, tags: list[Tag] | None, add_tags: list[Tag], remove_tags: list[str] | None
) -> dict[int, list[str]]:
    """Replace (``tags``), add and remove tags of every record; returns the new tag names of those that changed."""
    if tags is None and not add_tags and not remove_tags:
        return {}
    through, column = model.tags.through, f"{model._meta.model_name}_id"
    before = _tag_rows(model, ids)
    replace = {tag.pk: tag.name for tag in tags} if tags is not None else None
    add = {tag.pk: tag.name for tag in add_tags}
    lowered = {name.strip().lower() for name in remove_tags or [] if name.strip()}
    remove = set(Tag.objects.annotate(lower=Lower("name")).filter(lower__in=lowered).values_list("pk", flat=True))
    after = {}
    for pk in ids:
        wanted = dict(replace) if replace is not None else dict(before[pk])
        wanted.update(add)
        for tag_id in remove:
            wanted.pop(tag_id, None)
        after[pk] = wanted
    drop = [(pk, tag_id) for pk in ids for tag_id in before[pk] if tag_id not in after[pk]]
    if drop:
        for tag_id in {tag_id for _pk, tag_id in drop}:
            through.objects.filter(**{f"{column}__in": [pk for pk, t in drop if t == tag_id]}, tag_id=tag_id).delete()
    through.objects.bulk_create(
        [through(**{column: pk, "tag_id": tag_id}) for pk in ids for tag_id in after[pk] if tag_id not in before[pk]],
        ignore_conflicts=True,
    )
    return {pk: sorted(after[pk].values()) for pk in ids if set(after[pk]) != set(before[pk])}


@transaction.atomic
def bulk_update(
    *,
    record_type: str,
    ids: list[int],
    actor: Actor,
    fields: BulkFields | None = None,
    tags: list[str] | None = None,
    add_tags: list[str] | None = None,
    remove_tags: list[str] | None = None,
) -> list[int]:
    """Set ``fields`` (owner, status) and change tags on every record of ``ids``, or on none (400
    ``bulk_failed`` listing each refused item; 400 ``validation_error`` naming each unknown tag when the actor may
    not create tags). Returns the ids changed."""
    require_actor(actor)
    model = MODELS[record_type]
    permission = UPDATE[record_type]
    values: dict[str, Any] = dict(fields or {})
    unknown = set(values) - set(BulkFields.__annotations__)
    if unknown:
        raise TypeError(f"bulk_update sets owner_id and status, not {sorted(unknown)}")
    if "owner_id" in values:
        keep_in_reach(actor, permission, values["owner_id"])
    records, errors = _locked(model, actor, permission, ids)
    for record in records:
        errors += _item_errors(record_type, record, values)
    if errors:
        raise BulkFailed(errors)
    replace_tags = tags_named(tags, actor=actor, field="tags") if tags is not None else None
    added_tags = tags_named(add_tags or [], actor=actor, field="add_tags")

    now = timezone.now()
    changed: dict[int, dict[str, list]] = {}
    dirty = []
    for record in records:
        change = {}
        for name, value in values.items():
            before = getattr(record, name)
            if before != value:
                change[name] = [before, value]
                setattr(record, name, value)
        if change:
            record.updated_at = now
            dirty.append(record)
            changed[record.pk] = change
    if dirty:
        model.objects.bulk_update(dirty, [*values, "updated_at"])
    ids_found = [record.pk for record in records]
    retagged = _apply_tags(model, ids_found, tags=replace_tags, add_tags=added_tags, remove_tags=remove_tags)
    for pk, names in retagged.items():
        changed.setdefault(pk, {})["tags"] = names
    touched = set(retagged) - {record.pk for record in dirty}
    if touched:
        model.objects.filter(pk__in=touched).update(updated_at=now)
    outbox.record_many(
        f"{record_type}.updated",
        subject_type=record_type,
        actor=actor,
        items=[(pk, updated_payload(pk, change, bulk=True)) for pk, change in changed.items()],
    )
    return [pk for pk in ids_found if pk in changed]


@transaction.atomic
def bulk_delete(*, record_type: str, ids: list[int], actor: Actor) -> list[int]:
    """Delete every record of ``ids`` or none (400 ``bulk_failed``). Returns the ids deleted."""
    require_actor(actor)
    model = MODELS[record_type]
    records, errors = _locked(model, actor, DELETE[record_type], ids)
    if errors:
        raise BulkFailed(errors)
    outbox.record_many(
        f"{record_type}.deleted",
        subject_type=record_type,
        actor=actor,
        items=[(record.pk, outbox.snapshot(record)) for record in records],
    )
    deleted = [record.pk for record in records]
    model.objects.filter(pk__in=deleted).delete()
    return deleted
