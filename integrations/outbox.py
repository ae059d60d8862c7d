"""Record domain events in the tenant's outbox, inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from rbac.access import actor_identity

from .events import EVENTS
from .models import OutboxEvent

_encoder = DjangoJSONEncoder()


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(_encoder.encode(value))


def record(event_type: str, *, subject, payload: dict[str, Any], actor=None) -> OutboxEvent:
    """Record ``event_type`` about ``subject`` (a model instance). Must run inside the changing transaction."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown event type {event_type!r}: add it to integrations/events.py")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox.record must run inside the transaction that makes the change")
    actor_id, actor_label = actor_identity(actor)
    return OutboxEvent.objects.create(
        type=event_type,
        subject_type=subject._meta.model_name,
        subject_id=str(subject.pk),
        actor_id=actor_id,
        actor_label=actor_label,
        payload=_jsonable(payload),
    )


def snapshot(instance, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The instance's own column values, as an event payload."""
    return _jsonable(
        {
            field.attname: getattr(instance, field.attname)
            for field in instance._meta.concrete_fields
            if field.name not in exclude
        }
    )
