"""Record domain events in the tenant's outbox, inside the caller's transaction.

Once that transaction commits, a relay task is queued (``transaction.on_commit``, never inside the transaction),
so webhooks go out within moments; rows written otherwise (bulk inserts) are relayed by the beat sweep.
"""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.dispatch import Signal

from rbac.actor import Actor, actor_identity, require_actor

from .events import EVENTS
from .models import OutboxEvent

_encoder = DjangoJSONEncoder()

# Sent inside the changing transaction, after events are recorded, with ``event_types`` (a set of type names). Apps
# above this one (analytics) connect to it to react to changes without any import from here into them.
recorded = Signal()


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(_encoder.encode(value))


def _check_recordable(event_type: str) -> None:
    if event_type not in EVENTS:
        raise ValueError(f"unknown event type {event_type!r}: add it to integrations/events.py")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("events are recorded inside the transaction that makes the change")


def record(event_type: str, *, subject, payload: dict[str, Any], actor: Actor) -> OutboxEvent:
    """Record ``event_type`` about ``subject`` (a model instance), done by ``actor`` (the caller's access or a
    :class:`rbac.actor.SystemActor`). Must run inside the changing transaction."""
    _check_recordable(event_type)
    actor_id, actor_label = actor_identity(require_actor(actor))
    relay_after_commit()
    event = OutboxEvent.objects.create(
        type=event_type,
        subject_type=subject._meta.model_name,
        subject_id=str(subject.pk),
        actor_id=actor_id,
        actor_label=actor_label,
        payload=_jsonable(payload),
    )
    recorded.send(sender=OutboxEvent, event_types={event_type})
    return event


def record_many(event_type: str, *, subject_type: str, actor: Actor, items: list[tuple[Any, dict[str, Any]]]) -> None:
    """:func:`record` for many subjects of one type: one row per ``(subject id, payload)``, in one INSERT (a bulk
    change or a stage deletion may touch thousands of records)."""
    if not items:
        return
    _check_recordable(event_type)
    actor_id, actor_label = actor_identity(require_actor(actor))
    relay_after_commit()
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                type=event_type,
                subject_type=subject_type,
                subject_id=str(pk),
                actor_id=actor_id,
                actor_label=actor_label,
                payload=_jsonable(payload),
            )
            for pk, payload in items
        ]
    )
    recorded.send(sender=OutboxEvent, event_types={event_type})


def apply_changes(instance, fields: dict[str, Any]) -> dict[str, list]:
    """Apply ``fields`` to ``instance``; return ``{field: [before, after]}`` for what really changed (the
    ``changes`` of an ``*.updated`` event)."""
    changed = {}
    for name, value in fields.items():
        before = getattr(instance, name)
        if before != value:
            changed[name] = [before, value]
            setattr(instance, name, value)
    return changed


def snapshot(instance, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The instance's own column values, as an event payload."""
    return _jsonable(
        {
            field.attname: getattr(instance, field.attname)
            for field in instance._meta.concrete_fields
            if field.name not in exclude
        }
    )


class _RelayAfterCommit:
    """The after-commit hook of one transaction (it knows whether it ran, as test harnesses keep it listed)."""

    done = False

    def __init__(self, schema_name: str):
        self.schema_name = schema_name
        self.__qualname__ = "relay_after_commit"  # Django names a failing hook by it

    def __call__(self) -> None:
        from .relay import request_relay

        self.done = True
        request_relay(schema_name=self.schema_name)


def relay_after_commit() -> None:
    """Queue the relay once the current transaction commits: once per transaction, however many events it
    records. Nothing is queued when it rolls back.

    A pending hook still listed was registered in this transaction, in a savepoint that is open around us or
    already released, so it runs exactly when our event commits; one dropped with a rolled-back savepoint is
    no longer listed, and the next event registers a new one.
    """
    connection = transaction.get_connection()
    if any(isinstance(hook, _RelayAfterCommit) and not hook.done for _sids, hook, _robust in connection.run_on_commit):
        return
    transaction.on_commit(_RelayAfterCommit(connection.schema_name), robust=True)
