from __future__ import annotations

from django.db.models.functions import Lower

from .models import Tag


def tags_named(names: list[str]) -> list[Tag]:
    """The tags with these names (case-insensitive), creating the missing ones."""
    wanted = {name.strip().lower(): name.strip() for name in names if name and name.strip()}
    if not wanted:
        return []
    found = {tag.name.lower(): tag for tag in Tag.objects.annotate(n=Lower("name")).filter(n__in=list(wanted))}
    missing = [Tag(name=wanted[key][:50]) for key in wanted if key not in found]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        found = {tag.name.lower(): tag for tag in Tag.objects.annotate(n=Lower("name")).filter(n__in=list(wanted))}
    return [found[key] for key in wanted if key in found]
