"""Rows other apps add to the timelines of CRM records (the messages campaigns sent a contact...), registered
at start-up, so crm never imports them. A source gives, for a record and the caller's access, a queryset of
``values_list(type, key, at)`` rows (or None) and a loader of a page's keys (:func:`crm.selectors.timeline`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, QuerySet

#: The row types sources may add (the timeline's documented ``type`` values besides activity and event).
MESSAGE = "message"
TYPES = (MESSAGE,)


@dataclass(frozen=True)
class TimelineSource:
    type: str
    rows: Callable[[Model, Any], QuerySet | None]
    load: Callable[[list[str]], dict[str, dict[str, Any]]]


_SOURCES: dict[str, TimelineSource] = {}


def register_timeline_source(source: TimelineSource) -> None:
    if source.type not in TYPES:
        raise ValueError(f"timeline row type {source.type!r} is not declared in crm.timeline.TYPES")
    _SOURCES[source.type] = source


def extra_rows(record: Model, access) -> list[QuerySet]:
    return [rows for source in _SOURCES.values() if (rows := source.rows(record, access)) is not None]


def loaders() -> dict[str, Callable[[list[str]], dict[str, dict[str, Any]]]]:
    return {source.type: source.load for source in _SOURCES.values()}
