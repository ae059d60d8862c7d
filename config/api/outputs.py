"""The base of every model output: DRF's ``ModelSerializer`` with a shorter loop from instance to dict.

DRF serializes each row by walking its fields through a generator, and each field reads its value through
``Field.get_attribute`` (a loop over the dotted source, a mapping check, a callable check, exception handling).
For a list page that is most of the time spent in Python: 50 rows of 20 fields are 1,000 such reads.

:class:`ModelOutput` resolves its fields once per serializer instance (a list's child serves every row): a field
whose value is an attribute of the instance (a one-part source, no ``get_attribute`` of its own) is read with
``getattr`` (a key, from a ``dict`` row a list's selector gave); any other field, or an attribute that raises or is
callable (DRF calls methods), goes DRF's way.
The result is DRF's, key for key and value for value; ``tests/crm/test_outputs.py`` holds every output of the
project to it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from rest_framework import serializers
from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject

# (name, attribute or None, field): None means DRF's own get_attribute for that field.
_Plan = list[tuple[str, str | None, Field]]


class ModelOutput(serializers.ModelSerializer):
    @cached_property
    def _plan(self) -> _Plan:
        plan: _Plan = []
        for field in self._readable_fields:
            sources = getattr(field, "source_attrs", None) or []
            # Not a field reading its value its own way, a dotted source, nor the whole instance ("*").
            plain = type(field).get_attribute is Field.get_attribute and len(sources) == 1
            plan.append((str(field.field_name), sources[0] if plain else None, field))
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        if isinstance(instance, self.Meta.model):
            read: Any = getattr
        elif type(instance) is dict:  # a row a selector gave for a list page
            read = dict.__getitem__
        else:  # another class: DRF's way
            return super().to_representation(instance)
        ret: dict[str, Any] = {}
        for name, attribute, field in self._plan:
            if attribute is not None:
                try:
                    value = read(instance, attribute)
                except (AttributeError, KeyError):
                    attribute = None  # DRF's handling: a default, null, or the key left out
                else:
                    if callable(value):  # a method (DRF calls it), a manager...
                        attribute = None
            if attribute is None:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                if isinstance(value, PKOnlyObject) and value.pk is None:
                    ret[name] = None
                    continue
            ret[name] = None if value is None else field.to_representation(value)
        return ret
