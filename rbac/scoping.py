"""Record scope: which owned records a caller reaches under a permission granted ``own`` or ``all``."""

from __future__ import annotations

from django.db import models

from config.permissions import Scope


class OwnedQuerySet(models.QuerySet):
    """For models with an ``owner``. The one place that turns a grant's scope into a filter."""

    owner_field = "owner"

    def visible_to(self, access, permission: str) -> OwnedQuerySet:
        scope = access.scope(permission)
        if scope == Scope.ALL:
            return self
        if scope == Scope.OWN and access.user_id is not None:
            return self.filter(**{f"{self.owner_field}_id": access.user_id})
        return self.none()


def holds(actor, permission: str) -> bool:
    """Does the actor hold ``permission``, in any scope? The system actor (``None``) holds every permission."""
    return actor is None or actor.scope(permission) is not None


def can_reach(access, permission: str, *, owner_id: int | None) -> bool:
    """Would a record owned by ``owner_id`` be within the caller's scope for ``permission``?"""
    scope = access.scope(permission)
    return scope == Scope.ALL or (scope == Scope.OWN and owner_id is not None and owner_id == access.user_id)
