"""The record kernel: what the services of every record type share, written once. Leads, contacts, companies and
activities (``crm.services``) and deals (``pipelines.services``) all use it.

* **Who acts, how far they reach**: :mod:`rbac.actor` (the typed actor, the one scope rule). A record's new owner
  must stay within the actor's scope for the record's edit permission; taking a record for oneself is always in
  reach (:func:`rbac.actor.keep_in_reach`).
* **Not given**: :data:`UNSET` is the default of every optional argument of a create or an update; ``None`` is a
  value (no owner, no close date). :func:`given` keeps what was given, so a create leaves the model's defaults and
  an update changes only what it names.
* **One update**: :func:`record_update` applies fields, custom fields and tags to a locked record, checks the
  owner, saves only what changed and returns the event's ``changes``: ``{field: [before, after]}``, and ``tags``
  as the new list of names, present only when the tags changed (the event catalogue's shape,
  ``integrations/events.py``).
* **One payload builder**: :func:`record_event` records ``<type>.created`` / ``.deleted`` with the record's
  snapshot and ``<type>.updated`` with ``{id, changes}`` (nothing when nothing changed); :func:`updated_payload`
  is the same payload for bulk changes.
* **One timeline**: :func:`crm.selectors.timeline` (activities, events, and the rows other apps register in
  :mod:`crm.timeline`); a deal's is the same, its stage moves shown once, as their ``deal.stage_changed`` events.
* **Registries the apps above crm fill at start-up** (``AppConfig.ready``), so crm never imports them: the model of
  a record type (custom fields of deals), references to contacts and companies (a merge moves them), and the deal a
  lead conversion opens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from django.db.models import Model

from integrations import outbox
from rbac.actor import Actor, keep_in_reach, user_of

from . import custom_fields
from .models import Record
from .tagging import tags_named


class _Unset:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: "Not given" (``None`` is a value: no owner, no date).
UNSET: Final[Any] = _Unset()


def given(**values: Any) -> dict[str, Any]:
    """The values that were given (not :data:`UNSET`)."""
    return {name: value for name, value in values.items() if value is not UNSET}


def owner_for(actor: Actor, owner_id: int | None) -> int | None:
    """The owner of a new record: the one given (``None``: nobody), else the actor's user (the system: nobody)."""
    return user_of(actor) if owner_id is UNSET else owner_id


# --- tags ---


def set_tags(instance: Any, names: list[str] | None, *, actor: Actor) -> list[str] | None:
    """Replace the record's tags with the named ones (``None``: leave them; unknown names: see
    :func:`crm.tagging.tags_named`). Returns the new names, sorted, when they changed; else None."""
    if names is None:
        return None
    before = sorted(tag.name for tag in instance.tags.all())
    tags = tags_named(names, actor=actor)
    instance.tags.set(tags)
    after = sorted(tag.name for tag in tags)
    return after if after != before else None


# --- creates and updates ---


def save_fields(instance: Model, update_fields: list[str]) -> None:
    instance.save(update_fields=update_fields)


def record_update(
    instance: Any,
    *,
    actor: Actor,
    permission: str,
    fields: dict[str, Any],
    record_type: str | None = None,
    custom_fields_values: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    check: Callable[[Any, dict[str, list]], None] | None = None,
    save: Callable[[Any, list[str]], None] = save_fields,
) -> dict[str, Any]:
    """Apply an update to ``instance`` (locked by the caller) and return its ``changes`` for the event.

    ``fields`` are the model fields given (:func:`given`); ``custom_fields_values`` are validated against the
    ``record_type``'s definitions and merged with the stored ones; ``tags`` replace the record's. ``check`` sees the
    instance and its field changes before anything is saved; a new owner must stay within the actor's scope for
    ``permission``. Only changed columns are saved (with ``updated_at``), by ``save`` (a record with unique keys
    passes its own, to turn a concurrent duplicate into a 409)."""
    changes = outbox.apply_changes(instance, fields)
    if custom_fields_values is not None:
        assert record_type is not None, "custom fields belong to a record type"
        values = custom_fields.clean_values(record_type, custom_fields_values, existing=instance.custom_fields)
        changes.update(outbox.apply_changes(instance, {"custom_fields": values}))
    if check is not None:
        check(instance, changes)
    if "owner_id" in changes:
        keep_in_reach(actor, permission, instance.owner_id)
    if changes:
        meta = type(instance)._meta
        save(instance, [*(meta.get_field(name).name for name in changes), "updated_at"])
    tag_names = set_tags(instance, tags, actor=actor)
    if tag_names is not None:
        changes["tags"] = tag_names
    return changes


# --- events ---


def updated_payload(pk: Any, changes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The payload of ``<type>.updated``: ``{id, changes}`` (bulk changes add ``bulk: true``)."""
    return {"id": pk, "changes": changes, **extra}


def record_event(verb: str, instance: Model, *, actor: Actor, changes: dict[str, Any] | None = None, **extra: Any):
    """Record ``<model name>.<verb>`` about ``instance``: ``created`` and ``deleted`` carry its snapshot (with
    ``extra``, e.g. the lead a deal comes from), ``updated`` carries :func:`updated_payload`, and is not recorded
    when nothing changed."""
    event_type = f"{instance._meta.model_name}.{verb}"
    if verb == "updated":
        if not changes:
            return None
        payload = updated_payload(instance.pk, changes, **extra)
    else:
        payload = {**outbox.snapshot(instance), **extra}
    return outbox.record(event_type, subject=instance, payload=payload, actor=actor)


# --- registries filled by the apps above crm ---

_RECORD_MODELS: dict[str, tuple[type[Record], str]] = {}


def register_record_model(record_type: str, model: type[Record], *, view: str) -> None:
    """``record_type`` (``crm.choices.RecordType``) is stored in ``model`` and seen with the ``view`` permission
    (pipelines registers deals)."""
    _RECORD_MODELS[record_type] = (model, view)


def _registered(record_type: str) -> tuple[type[Record], str]:
    if record_type not in _RECORD_MODELS:
        from .models import Company, Contact, Lead
        from .permissions import COMPANY_VIEW, CONTACT_VIEW, LEAD_VIEW

        _RECORD_MODELS.update(
            {"company": (Company, COMPANY_VIEW), "contact": (Contact, CONTACT_VIEW), "lead": (Lead, LEAD_VIEW)}
        )
    return _RECORD_MODELS[record_type]


def record_model(record_type: str) -> type[Record]:
    return _registered(record_type)[0]


def record_view_permission(record_type: str) -> str:
    """The permission that lets an actor see records of ``record_type`` (record scope applies)."""
    return _registered(record_type)[1]


@dataclass(frozen=True)
class Reference:
    """Rows of ``model`` that point to a contact or a company through ``field``; a merge moves them to the
    survivor and names their ids under ``name`` in the event's ``moved``."""

    model: type[Model]
    field: str
    name: str


_REFERENCES: dict[str, list[Reference]] = {}


def register_reference(target: type[Model], reference: Reference) -> None:
    """Another app's ``reference`` to ``target`` (``Contact`` or ``Company``): merges move it (deals)."""
    found = _REFERENCES.setdefault(target._meta.label_lower, [])
    if reference not in found:
        found.append(reference)


def references_to(target: type[Model]) -> list[Reference]:
    return list(_REFERENCES.get(target._meta.label_lower, []))


#: Opens the deal of a converted lead: ``(lead=..., actor=...) -> deal``, registered by pipelines.
DealOpener = Callable[..., Record]
_DEAL_OPENERS: list[DealOpener] = []


def register_deal_opener(opener: DealOpener) -> None:
    _DEAL_OPENERS[:] = [opener]


def open_deal(*, lead: Model, actor: Actor) -> Record:
    """The deal of a lead being converted with ``create_deal`` (``pipelines.services.deal_create_from_lead``)."""
    if not _DEAL_OPENERS:
        raise RuntimeError("no app opens deals: is pipelines in INSTALLED_APPS?")
    return _DEAL_OPENERS[0](lead=lead, actor=actor)
