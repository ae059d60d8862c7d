"""Who acts on the data plane, and how far they reach: the one file a reviewer reads to see that nothing reachable
through a service exceeds the actor's grants.

**The actor.** Every data-plane service takes ``actor: Actor``, one of two things:

* :class:`rbac.access.Access`: the caller's access (a member's session or an API key), with the role's grants
  and their scope (``own`` / ``all``) and the plan's entitlements. API views, co-pilot and MCP tools pass the
  request's; imports and exports keep the one of the person who started them.
* :class:`SystemActor`: the product itself, named with the reason it acts (``SystemActor("campaign sending")``):
  tasks, provider callbacks, admin actions, demo seeding. No request can carry one: the API only builds
  ``Access`` (``rbac.access.access_for_request``).

Anything else (a bare ``User``, ``None``) is refused by :func:`require_actor` with ``TypeError``: a person's
powers are their grants, which only an ``Access`` carries, and "nobody" is not the system by accident.

**The rule.** A grant of ``permission`` with scope ``all`` reaches every record; ``own`` reaches the records the
actor's user owns; no grant reaches none. The system reaches every record. Every question of reach is answered
here and nowhere else:

* reads: :meth:`OwnedQuerySet.visible_to` (the base viewset applies it to every queryset; services and selectors
  through :func:`reachable`);
* writes: :func:`keep_in_reach` after a change of owner (a record may not be handed to someone outside the
  actor's scope; taking it for oneself is always in reach), :func:`require_reach` for an action on a record
  (closing a deal needs ``pipelines.deal.close`` on it);
* other powers: :func:`holds` (creating tags by naming them needs ``crm.tag.manage``).

Nothing here widens an ``Access``: each function reads its grants, and only a ``SystemActor`` reaches further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from django.db import models

from config.permissions import Scope

from .access import Access
from .errors import OutOfReach, PermissionDenied

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet


@dataclass(frozen=True)
class SystemActor:
    """The product acting on its own, for ``reason`` (``"campaign sending"``, ``"demo data"``, ``"tests"``). It
    holds every permission in every scope. It owns nothing: records it creates have no owner unless one is given.
    Its changes carry no actor in events and webhooks (``actor: null``), as the catalogue documents."""

    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError("a SystemActor names why the system acts: SystemActor('campaign sending')")


Actor: TypeAlias = Access | SystemActor


def require_actor(actor: object) -> Actor:
    """``actor`` if it is an :class:`Access` or a :class:`SystemActor`; ``TypeError`` for anything else (a
    ``User``, ``None``), so no caller gets the system's powers by leaving the actor out."""
    if isinstance(actor, Access | SystemActor):
        return actor
    raise TypeError(
        f"a data-plane service acts for an rbac.access.Access or an rbac.actor.SystemActor, not {actor!r}: pass the "
        "caller's access (rbac.access.access_for) or SystemActor('<why the system acts>')"
    )


def actor_identity(actor: object) -> tuple[int | None, str]:
    """``(user id, label)`` recorded with an event or an audit entry: the member and their e-mail, an API key
    (its creator and name), or ``(None, "")`` for the system. The control plane's audit also passes a user (an
    operator in the admin) or None (its own jobs)."""
    if actor is None or isinstance(actor, SystemActor):
        return None, ""
    if isinstance(actor, Access):
        return actor.user_id, actor.label
    if getattr(actor, "is_authenticated", False):
        return getattr(actor, "pk", None), getattr(actor, "email", "")
    return None, str(getattr(actor, "name", "") or "")


def user_of(actor: Actor) -> int | None:
    """The user an actor acts as: the default owner of what it creates. The system is no one."""
    return actor.user_id if isinstance(actor, Access) else None


class Reach(Protocol):
    """What :meth:`OwnedQuerySet.visible_to` reads from an :class:`Access`; a reach stored for later (a campaign
    keeps its scheduler's, ``crm.campaigns.selectors.StoredReach``) provides the same."""

    @property
    def user_id(self) -> int | None: ...

    def scope(self, permission: str) -> str | None: ...


_Q = TypeVar("_Q", bound="OwnedQuerySet[Any]")


class OwnedQuerySet(models.QuerySet):
    """For models with an ``owner``. The one place that turns a grant's scope into a filter."""

    owner_field = "owner"

    def visible_to(self: _Q, actor: Reach | SystemActor, permission: str) -> _Q:
        if isinstance(actor, SystemActor):
            return self
        scope = actor.scope(permission)
        if scope == Scope.ALL:
            return self
        if scope == Scope.OWN and actor.user_id is not None:
            return self.filter(**{f"{self.owner_field}_id": actor.user_id})
        return self.none()


def reachable(model: type[Model], actor: Actor, permission: str) -> QuerySet[Any]:
    """The records of ``model`` (an owned one) within the actor's scope for ``permission``."""
    return model._default_manager.visible_to(actor, permission)  # type: ignore[attr-defined]


def holds(actor: Actor, permission: str) -> bool:
    """Does the actor hold ``permission``, in any scope? The system holds every permission."""
    actor = require_actor(actor)
    return isinstance(actor, SystemActor) or actor.scope(permission) is not None


def can_reach(actor: Actor, permission: str, *, owner_id: int | None) -> bool:
    """Would a record owned by ``owner_id`` be within the actor's scope for ``permission``?"""
    actor = require_actor(actor)
    if isinstance(actor, SystemActor):
        return True
    scope = actor.scope(permission)
    return scope == Scope.ALL or (scope == Scope.OWN and owner_id is not None and owner_id == actor.user_id)


def keep_in_reach(actor: Actor, permission: str, owner_id: int | None) -> None:
    """After a write that sets a record's owner: the record must stay within the actor's scope for ``permission``
    (``own`` stays own), else 400 ``out_of_scope`` on ``owner``. Taking a record for oneself is always in reach:
    whoever may create or edit a record may own it (a role that creates deals without editing others' creates
    its own)."""
    actor = require_actor(actor)
    if isinstance(actor, Access) and owner_id is not None and owner_id == actor.user_id:
        return
    if not can_reach(actor, permission, owner_id=owner_id):
        raise OutOfReach(field="owner")


def require_reach(actor: Actor, permission: str, *, owner_id: int | None) -> None:
    """An action on a record owned by ``owner_id`` needs ``permission`` in a scope that reaches it (403
    ``permission_denied`` naming it)."""
    if not can_reach(actor, permission, owner_id=owner_id):
        raise PermissionDenied(extra={"permission": permission})
