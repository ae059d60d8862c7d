"""Helpers every CRM service shares: updates with their changes, scope checks, tags."""

from __future__ import annotations

from integrations import outbox
from rbac.actor import Actor, keep_in_reach, reachable

from .. import custom_fields
from ..tagging import tags_named

__all__ = ["apply_update", "keep_in_reach", "reachable", "set_tags"]


def apply_update(
    instance, *, record_type: str, permission: str, actor: Actor, fields: dict, custom_fields_values
) -> dict:
    """Apply an update's fields and custom-field values to ``instance`` (locked); return what changed, as
    :func:`integrations.outbox.apply_changes` does. A new owner must stay within the actor's scope."""
    change = outbox.apply_changes(instance, fields)
    if custom_fields_values is not None:
        values = custom_fields.clean_values(record_type, custom_fields_values, existing=instance.custom_fields)
        change.update(outbox.apply_changes(instance, {"custom_fields": values}))
    if "owner_id" in change:
        keep_in_reach(actor, permission, instance.owner_id)
    return change


def set_tags(instance, names: list[str] | None, *, actor: Actor) -> list[str] | None:
    """Replace the record's tags with the named ones (unknown names: see :func:`crm.tagging.tags_named`)."""
    if names is None:
        return None
    tags = tags_named(names, actor=actor)
    instance.tags.set(tags)
    return sorted(tag.name for tag in tags)
