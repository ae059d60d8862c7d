"""Reads of CRM records: list querysets with what their output needs (a constant number of queries whatever the
page size), statistics and timelines. Reads that count or list records take the caller's queryset, already
limited to their scope by the base viewset, or the caller's :class:`rbac.access.Access`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import CharField, Count, F, JSONField, Model, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Cast, JSONObject
from django.utils import timezone
from django_tenants.utils import schema_context

from config.api.references import people, person_name
from config.db import connection
from integrations.models import OutboxEvent

from . import timeline as timeline_sources
from .choices import ActivityKind, CompanySize, ContactStatus, LeadSource, LeadStatus, LifecycleStage
from .models import Activity, Company, Contact, CustomField, Lead, Tag
from .permissions import ACTIVITY_VIEW

# --- list querysets ---


def _tags() -> Prefetch:
    return Prefetch("tags", queryset=Tag.objects.only("name"))


def leads() -> QuerySet[Lead]:
    """Leads with what their output needs, in a constant number of queries."""
    return Lead.objects.select_related(
        "owner", "converted_contact", "converted_company", "converted_deal"
    ).prefetch_related(_tags())


def _row_of(relation: str, **fields: str) -> Subquery:
    """The record ``relation`` points to, as a JSON object of ``fields`` (NULL without one): a subquery, which a
    list's ``COUNT(*)`` leaves out, where a join would stay in it and cost the count its index-only scan."""
    model = Lead._meta.get_field(relation).related_model
    assert isinstance(model, type)
    row = model._default_manager.filter(pk=OuterRef(f"{relation}_id")).values(row=JSONObject(**fields))
    return Subquery(row[:1], output_field=JSONField())


def lead_list() -> QuerySet[Lead, dict[str, Any]]:
    """Leads for a list page, as flat rows (``values()``: no model instances, the list's hottest cost) with their
    tag names (an ``ARRAY`` subquery) and their owner's and converted records' names (a JSON object each); filters,
    search and ordering apply to it as to the model's queryset, and :func:`lead_items` turns a page's rows into
    what :class:`crm.api.serializers.LeadOutput` reads, as it reads a lead.

    A clone of one queryset built once a process: building and resolving its five subqueries cost 1.1 ms a list
    request, a clone microseconds. It names no organization (tables resolve through the schema's search path)."""
    return _lead_rows().all()


@functools.cache
def _lead_rows() -> QuerySet[Lead, dict[str, Any]]:
    names = ArraySubquery(Lead.tags.through.objects.filter(lead_id=OuterRef("pk")).values("tag__name"))
    return Lead.objects.values(
        *(field.attname for field in Lead._meta.concrete_fields),
        owner_row=_row_of("owner", email="email", first="first_name", last="last_name"),
        contact_row=_row_of("converted_contact", email="email", first="first_name", last="last_name"),
        company_row=_row_of("converted_company", name="name"),
        deal_row=_row_of("converted_deal", name="title"),
        tag_names=names,
    )


def lead_items(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`lead_list`'s rows as a lead reads: ``owner`` ``{id, email, name}``, the converted contact, company
    and deal ``{id, name}`` (their ``str()``), ``tags`` the names."""
    items = []
    for item in rows:  # each a dict of its own (values())
        owner, contact = item.pop("owner_row"), item.pop("contact_row")
        owner_id = item.pop("owner_id")
        item["owner"] = owner and {
            "id": owner_id,
            "email": owner["email"],
            "name": person_name(owner["first"], owner["last"]),
        }
        item["converted_contact"] = contact and {
            "id": item["converted_contact_id"],
            "name": Contact.name_of(contact["first"], contact["last"], contact["email"]),
        }
        for relation, key in (("converted_company", "company_row"), ("converted_deal", "deal_row")):
            found = item.pop(key)
            item[relation] = found and {"id": item[f"{relation}_id"], "name": found["name"]}
        item["tags"] = item.pop("tag_names")
        items.append(item)
    return items


def companies() -> QuerySet[Company]:
    return Company.objects.select_related("owner").prefetch_related(_tags())


def contacts() -> QuerySet[Contact]:
    return Contact.objects.select_related("owner", "company").prefetch_related(_tags())


def activities() -> QuerySet[Activity]:
    return Activity.objects.select_related("owner", "contact", "company", "lead", "deal")


def tags() -> QuerySet[Tag]:
    return Tag.objects.all()


def custom_fields() -> QuerySet[CustomField]:
    return CustomField.objects.all()


# ``my-tasks`` without ``due_before``: overdue tasks and those due within this many days from now. A rolling window,
# not "the end of this week", which on a Sunday evening showed nothing due the next morning.
MY_TASKS_DAYS = 7


def task_horizon(now: datetime | None = None) -> datetime:
    """The default ``due_before`` of ``my-tasks``: ``MY_TASKS_DAYS`` days (of 24 hours) from now."""
    return (now or timezone.now()) + timedelta(days=MY_TASKS_DAYS)


def open_tasks(queryset: QuerySet[Activity], *, user_id: int | None, due_before: datetime) -> QuerySet[Activity]:
    """The user's open tasks due before ``due_before`` (overdue ones included), soonest first."""
    return queryset.filter(
        owner_id=user_id, kind=ActivityKind.TASK, completed_at__isnull=True, due_at__lt=due_before
    ).order_by("due_at", "pk")


# --- statistics ---

# The key under which statistics count the records whose value is blank (no source, no size, no industry): JSON
# object keys cannot be null, and "" was easy to miss. Every grouping over a field that may be blank has it, 0
# included. A free-text value spelled "none" (an industry) is counted with the blank ones. Pipeline statistics
# group by stage and status, which are never blank; the forecast reports deals without a close date apart
# (``unscheduled``).
NONE_KEY = "none"


def _counts(queryset: QuerySet, field: str) -> dict[Any, int]:
    return {row[field]: row["n"] for row in queryset.order_by().values(field).annotate(n=Count("pk"))}


def _with_none(queryset: QuerySet, field: str, counts: dict[str, int], found: dict[Any, int]) -> dict[str, int]:
    """``counts`` with ``NONE_KEY`` counting the blank values, when the field may be blank."""
    if queryset.model._meta.get_field(field).blank:
        counts[NONE_KEY] = counts.get(NONE_KEY, 0) + found.get("", 0) + found.get(None, 0)
    return counts


def _by_choice(queryset: QuerySet, field: str, choices) -> dict[str, int]:
    """Every choice with its count (0 included), and ``NONE_KEY`` for blank values."""
    found = _counts(queryset, field)
    return _with_none(queryset, field, {value: found.get(value, 0) for value, _label in choices}, found)


def _by_value(queryset: QuerySet, field: str) -> dict[str, int]:
    """Each value found in a free-text field, alphabetically, and ``NONE_KEY`` for blank values."""
    found = _counts(queryset, field)
    counts = {value: n for value, n in sorted(found.items(), key=lambda item: str(item[0])) if value}
    return _with_none(queryset, field, counts, found)


def _by_owner(queryset: QuerySet) -> list[dict[str, Any]]:
    """Counts per owner, most first, each owner as a person reference (one query for the people)."""
    found = _counts(queryset, "owner_id")
    owners = people(found)
    return [
        {"owner": owners.get(owner) if owner is not None else None, "count": n}
        for owner, n in sorted(found.items(), key=lambda item: (-item[1], item[0] or 0))
    ]


def lead_stats(queryset: QuerySet[Lead]) -> dict[str, Any]:
    """Counts by status, source and owner, and the conversion rate (converted / all), over ``queryset``.
    Four queries."""
    by_status = _by_choice(queryset, "status", LeadStatus.choices)
    total = sum(by_status.values())
    return {
        "total": total,
        "by_status": by_status,
        "by_source": _by_choice(queryset, "source", LeadSource.choices),
        "by_owner": _by_owner(queryset),
        "conversion_rate": round(by_status[LeadStatus.CONVERTED] / total, 4) if total else None,
    }


def contact_stats(queryset: QuerySet[Contact]) -> dict[str, Any]:
    by_status = _by_choice(queryset, "status", ContactStatus.choices)
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_source": _by_choice(queryset, "source", LeadSource.choices),
        "by_lifecycle_stage": _by_choice(queryset, "lifecycle_stage", LifecycleStage.choices),
        "by_owner": _by_owner(queryset),
    }


def company_stats(queryset: QuerySet[Company]) -> dict[str, Any]:
    by_owner = _by_owner(queryset)
    return {
        "total": sum(row["count"] for row in by_owner),
        "by_industry": _by_value(queryset, "industry"),
        "by_size": _by_choice(queryset, "size", CompanySize.choices),
        "by_owner": by_owner,
    }


# --- timelines ---

ACTIVITY, EVENT = "activity", "event"

#: Loads a page's rows of one type: their keys → ``{key: data}``.
RowLoader = Callable[[list[str]], dict[str, dict[str, Any]]]


def timeline(*, record: Model, access, extra: Iterable[QuerySet] = ()) -> QuerySet:
    """The record's activities (those the caller may see) and the domain events about it, newest first, as rows
    ``(type, key, at)`` of one ``UNION ALL`` query: slice it for a page, then :func:`timeline_items` loads the
    page's rows in one query per type. ``extra`` adds rows of the caller's own (a deal's stage changes), as
    ``values_list(type, key, at)`` querysets."""
    name = str(record._meta.model_name)
    activity_rows = (
        Activity.objects.visible_to(access, ACTIVITY_VIEW)
        .filter(**{name: record})
        .annotate(row_type=Value(ACTIVITY), row_key=Cast("pk", CharField()), row_at=F("created_at"))
        .values_list("row_type", "row_key", "row_at")
        .order_by()
    )
    event_rows = (
        OutboxEvent.objects.filter(subject_type=name, subject_id=str(record.pk))
        .annotate(row_type=Value(EVENT), row_key=Cast("id", CharField()), row_at=F("occurred_at"))
        .values_list("row_type", "row_key", "row_at")
        .order_by()
    )
    sources = timeline_sources.extra_rows(record, access)  # registered by other apps (crm/timeline.py)
    return activity_rows.union(event_rows, *extra, *sources, all=True).order_by("-row_at", "-row_key")


def _activities(keys: list[str]) -> dict[str, dict[str, Any]]:
    found = (
        Activity.objects.select_related("owner")
        .only(*ACTIVITY_ITEM_FIELDS, "owner__email", "owner__first_name", "owner__last_name")
        .filter(pk__in=[int(key) for key in keys])
    )
    return {str(activity.pk): _activity(activity) for activity in found}


def _events(keys: list[str]) -> dict[str, dict[str, Any]]:
    return {str(event.pk): _event(event) for event in OutboxEvent.objects.filter(pk__in=keys)}


def timeline_items(
    rows: list[tuple[str, str, datetime]], loaders: Mapping[str, RowLoader] | None = None
) -> list[dict[str, Any]]:
    """The page's rows as timeline items ``{type, at, data}``, in the rows' order; ``loaders`` load the rows of
    the types :func:`timeline` was given in ``extra``."""
    loaders = {ACTIVITY: _activities, EVENT: _events, **timeline_sources.loaders(), **(loaders or {})}
    keys: dict[str, list[str]] = {}
    for kind, key, _at in rows:
        keys.setdefault(kind, []).append(key)
    loaded = {kind: loaders[kind](wanted) for kind, wanted in keys.items()}
    return [{"type": kind, "at": at, "data": loaded[kind][key]} for kind, key, at in rows if key in loaded[kind]]


ACTIVITY_ITEM_FIELDS = ("id", "kind", "subject", "body", "due_at", "completed_at", "owner")


def _activity(activity: Activity) -> dict[str, Any]:
    owner = activity.owner
    return {
        "id": activity.pk,
        "kind": activity.kind,
        "subject": activity.subject,
        "body": activity.body,
        "due_at": activity.due_at,
        "completed_at": activity.completed_at,
        "owner": None if owner is None else {"id": owner.pk, "email": owner.email, "name": owner.full_name},
    }


def _event(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "event": event.type,
        "actor": {"id": event.actor_id, "label": event.actor_label} if event.actor_id else None,
        "payload": event.payload,
    }


# --- usage counters (billing limits) ---


def _count(organization, model) -> int:
    """Rows of ``model`` in ``organization``'s schema; billing also asks from the public schema."""
    if connection.schema_name == organization.schema_name:
        return model.objects.count()
    with schema_context(organization.schema_name):
        return model.objects.count()


def contact_count(organization) -> int:
    """The usage counter of ``Limit.CONTACTS``."""
    return _count(organization, Contact)


def custom_field_count(organization) -> int:
    """The usage counter of ``Limit.CUSTOM_FIELDS``."""
    return _count(organization, CustomField)
