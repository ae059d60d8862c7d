"""How one record refers to another, the same everywhere in the API.

A person reads ``{id, email, name}``: the user's id (what every owner field takes), e-mail and full name.
"""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers


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
