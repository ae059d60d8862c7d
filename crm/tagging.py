"""Tags by name. Records name their tags; a name that matches no tag creates one only for someone who may manage
tags (``crm.tag.manage``, as the tag endpoints require) or for the system. Anyone else attaches existing tags."""

from __future__ import annotations

from django.db.models.functions import Lower

from rbac.actor import Actor, holds

from .errors import UnknownTags
from .models import Tag
from .permissions import TAG_MANAGE


def may_create_tags(actor: Actor) -> bool:
    return holds(actor, TAG_MANAGE)


def _wanted(names: list[str]) -> dict[str, str]:
    return {name.strip().lower(): name.strip()[:50] for name in names if name and name.strip()}


def _found(keys: list[str]) -> dict[str, Tag]:
    return {tag.name.lower(): tag for tag in Tag.objects.annotate(n=Lower("name")).filter(n__in=keys)}


def tags_found(names: list[str], *, create: bool) -> tuple[dict[str, Tag], list[str]]:
    """``({lower-cased name: tag}, [names of no tag])``; with ``create`` the missing tags are created first."""
    wanted = _wanted(names)
    if not wanted:
        return {}, []
    found = _found(list(wanted))
    missing = [Tag(name=wanted[key]) for key in wanted if key not in found]
    if missing and create:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        found = _found(list(wanted))
    return found, [wanted[key] for key in wanted if key not in found]


def tags_named(names: list[str], *, actor: Actor, field: str = "tags") -> list[Tag]:
    """The tags with these names (case-insensitive), in the order given. Missing ones are created when the actor
    may create tags; otherwise nothing is created and the answer is 400 ``validation_error`` with one
    ``unknown_tag`` error per unknown name under ``field``."""
    wanted = _wanted(names)
    found, unknown = tags_found(names, create=may_create_tags(actor))
    if unknown:
        raise UnknownTags(unknown, field=field)
    return [found[key] for key in wanted if key in found]
