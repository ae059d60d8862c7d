"""Helpers every CRM service shares: change tracking, scope checks, tags, events in bulk."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model, QuerySet

from integrations import outbox
from integrations.events import EVENTS
from integrations.models import OutboxEvent
from rbac.access import Access, actor_identity
from rbac.errors import PermissionDenied
from rbac.scoping import can_reach

from ..errors import OutOfReach
from ..tagging import tags_named


def keep_in_reach(actor, permission: str, owner_id: int | None) -> None:
    """A write may not hand a record to someone outside the actor's scope (``own`` stays own).
    Taking a record for oneself is always within reach."""
    if actor is None or (owner_id is not None and owner_id == actor.user_id):
        return
    if not can_reach(actor, permission, owner_id=owner_id):
        raise OutOfReach(field="owner")


def require(actor, permission: str, owner_id: int | None) -> None:
    """The actor (when a member or key) may use ``permission`` on a record owned by ``owner_id``."""
    if isinstance(actor, Access) and not can_reach(actor, permission, owner_id=owner_id):
        raise PermissionDenied(extra={"permission": permission})


def reachable(model: type[Model], actor, permission: str) -> QuerySet:
    """The records of ``model`` within the actor's scope for ``permission`` (the system reaches every one)."""
    if isinstance(actor, Access):
        return model.objects.visible_to(actor, permission)
    return model.objects.all()


def set_tags(instance, names: list[str] | None) -> list[str] | None:
    if names is None:
        return None
    tags = tags_named(names)
    instance.tags.set(tags)
    return sorted(tag.name for tag in tags)


def organization():
    """The organization whose schema this connection writes into (plan limits count against it)."""
    tenant = getattr(connection, "tenant", None)
    if tenant is None or getattr(tenant, "pk", None) is None:
        raise RuntimeError("crm services run in an organization's schema")
    return tenant


def record_many(event_type: str, *, subject_type: str, actor, items: list[tuple[Any, dict[str, Any]]]) -> None:
    """One outbox row per ``(subject id, payload)``, in one INSERT, in the changing transaction; the relay is
    queued after commit as :func:`integrations.outbox.record` does."""
    if not items:
        return
    if event_type not in EVENTS:
        raise ValueError(f"unknown event type {event_type!r}: add it to integrations/events.py")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("events are recorded inside the transaction that makes the change")
    actor_id, actor_label = actor_identity(actor)
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                type=event_type,
                subject_type=subject_type,
                subject_id=str(pk),
                actor_id=actor_id,
                actor_label=actor_label,
                payload=json.loads(json.dumps(payload, cls=DjangoJSONEncoder)),
            )
            for pk, payload in items
        ]
    )
    outbox.relay_after_commit()
