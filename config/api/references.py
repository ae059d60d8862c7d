"""How one record refers to another, the same everywhere in the API.

A person reads ``{id, email, name}``: the user's id (what every owner field takes), e-mail and full name. Any other
record reads ``{id, name}``: its id (what request bodies take) and what a person calls it (its ``name``, else the
model's ``str()``: a contact's full name, a deal's title). Inputs keep taking bare ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def person_name(first_name: str, last_name: str) -> str:
    """A person's name as every reference gives it (``identity``'s ``User.full_name``): first and last, trimmed."""
    return f"{first_name} {last_name}".strip()


class PersonReference(serializers.Serializer):
    """A person, as every reference to one reads: the user's id (what owner fields take), e-mail and name."""

    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(source="full_name")

    def to_representation(self, instance):
        """The fields above from a user (``full_name``) or from a mapping with the same keys, without DRF's
        generic loop over them: this runs for every record of every list. ``tests/api/test_request_cost.py``
        holds it to the generic result."""
        if isinstance(instance, Mapping):
            user_id, email, name = instance["id"], instance["email"], instance["name"]
        else:
            user_id, email, name = instance.id, instance.email, instance.full_name
        return {
            "id": None if user_id is None else int(user_id),
            "email": None if email is None else str(email),
            "name": None if name is None else str(name),
        }


class RecordReference(serializers.Serializer):
    """A record, as every reference to one reads: its id (what request bodies take) and its name (a contact's full
    name, a deal's title, ...)."""

    # The name is the record's ``name`` when it has one, else its ``str()``, or ``name`` of a mapping. The queryset
    # serialized must load the record (``select_related``): a reference never queries.

    id = serializers.IntegerField()
    name = serializers.CharField()

    def to_representation(self, instance):
        if isinstance(instance, Mapping):
            return {"id": int(instance["id"]), "name": str(instance["name"])}
        name = getattr(instance, "name", None)
        return {"id": int(instance.pk), "name": str(instance) if name is None else str(name)}


def people(ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    """``{id: {id, email, name}}`` (what :class:`PersonReference` reads) of the users named, in one query; for
    references held as bare ids (counts grouped by owner, a creator's id on a data-plane row)."""
    wanted = {int(pk) for pk in ids if pk is not None}
    if not wanted:
        return {}
    users = get_user_model().objects.filter(pk__in=wanted).values_list("pk", "email", "first_name", "last_name")
    return {pk: {"id": pk, "email": email, "name": person_name(first, last)} for pk, email, first, last in users}


@extend_schema_field(PersonReference)
class PersonIdReference(serializers.Field):
    """A person held as a bare user id (a data-plane row, e.g. who created a campaign, keeps the id: users live in
    the public schema), read as every person reference: ``{id, email, name}`` (the ``PersonReference``
    component). The people of a whole list are loaded in one query, on the first row (``people()``); a single
    record costs one query."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def get_attribute(self, instance):
        user_id = super().get_attribute(instance)
        if user_id is None:
            return None
        loaded = self._loaded()
        if user_id not in loaded:
            loaded.update(people([user_id]))
        return loaded.get(user_id, {"id": user_id, "email": None, "name": None})

    def to_representation(self, value):
        return PersonReference().to_representation(value)

    def _loaded(self) -> dict[int, dict[str, Any]]:
        """The people this field names across the serialized rows, loaded once per serialization."""
        cache = self.root.__dict__.setdefault("_people_by_field", {})
        key = id(self)
        if key not in cache:
            rows = self.root.instance
            many = isinstance(rows, list | tuple) or hasattr(rows, "_result_cache")
            ids = [getattr(row, self.source_attrs[0], None) for row in rows] if many and rows is not None else []
            cache[key] = people(ids)
        return cache[key]
