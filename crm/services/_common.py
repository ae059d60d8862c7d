"""Helpers every CRM service shares: updates with their changes, scope checks, tags."""

from __future__ import annotations

from django.db.models import Model, QuerySet

from integrations import outbox
from rbac.access import Access
from rbac.scoping import can_reach

from .. import custom_fields
from ..errors import OutOfReach
from ..tagging import tags_named


def keep_in_reach(actor, permission: str, owner_id: int | None) -> None:
    """A write may not hand a record to someone outside the actor's scope (``own`` stays own).
    Taking a record for oneself is always within reach."""
    if actor is None or (owner_id is not None and owner_id == actor.user_id):
        return
    if not can_reach(actor, permission, owner_id=owner_id):
        raise OutOfReach(field="owner")


def reachable(model: type[Model], actor, permission: str) -> QuerySet:
    """The records of ``model`` within the actor's scope for ``permission`` (the system reaches every one)."""
    if isinstance(actor, Access):
        return model.objects.visible_to(actor, permission)
    return model.objects.all()


def apply_update(instance, *, record_type: str, permission: str, actor, fields: dict, custom_fields_values) -> dict:
    """Apply an update's fields and custom-field values to ``instance`` (locked); return what changed, as
    :func:`integrations.outbox.apply_changes` does. A new owner must stay within the actor's scope."""
    change = outbox.apply_changes(instance, fields)
    if custom_fields_values is not None:
        values = custom_fields.clean_values(record_type, custom_fields_values, existing=instance.custom_fields)
        change.update(outbox.apply_changes(instance, {"custom_fields": values}))
    if "owner_id" in change:
        keep_in_reach(actor, permission, instance.owner_id)
    return change


def set_tags(instance, names: list[str] | None, *, actor) -> list[str] | None:
    """Replace the record's tags with the named ones (unknown names: see :func:`crm.tagging.tags_named`)."""
    if names is None:
        return None
    tags = tags_named(names, actor=actor)
    instance.tags.set(tags)
    return sorted(tag.name for tag in tags)
