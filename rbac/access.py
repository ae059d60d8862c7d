"""Audited control-plane lookups behind every authorization decision, cached with versioned keys.

Everything the decision needs for a (user, organization) pair, the membership, the role's grants and the
organization's entitlements, is computed once and cached under a key that embeds two version tokens: one
per organization (bumped by any role, membership, subscription or override change of that organization)
and one global (bumped when an operator edits a plan). A change therefore takes effect on the very next
request, and a warm request costs no SQL query at all. A cached decision never outlives the entitlements it
embeds: when a trial or an override ends sooner than the cache TTL, the entry expires then. Each process also
keeps the entries it has read (they cannot change under their versioned keys), so a warm decision costs a single
cache round trip: reading the two version tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from time import time as clock

from django.core.cache import caches
from django.db import transaction

CACHE_TTL_SECONDS = 300
GLOBAL = "global"
_NONE = "-"


@dataclass(frozen=True)
class Entitlements:
    """What the organization's plan (with its overrides) allows."""

    plan_code: str
    plan_name: str
    subscription_status: str
    features: frozenset[str] = frozenset()
    limits: dict[str, int] = field(default_factory=dict)  # absent key: unlimited
    # Epoch second until which these entitlements hold (a trial or an override ends then); 0: not bounded.
    valid_until: float = 0.0

    def ttl(self, ceiling: int = 300) -> int:
        """Seconds a decision built on these entitlements may be cached: never past ``valid_until``."""
        if not self.valid_until:
            return ceiling
        return max(1, min(ceiling, int(self.valid_until - clock()) + 1))

    def has(self, feature: str) -> bool:
        return feature in self.features

    def limit(self, name: str) -> int | None:
        return self.limits.get(name)


@dataclass(frozen=True)
class Access:
    """The caller's standing in the organization of the request."""

    organization_id: int
    user_id: int | None
    membership_id: int | None
    role_key: str
    role_name: str
    grants: dict[str, str]
    entitlements: Entitlements
    label: str = ""  # e-mail of the user, or the API key's name
    principal: str = "user"  # or "api_key"
    key_id: int | None = None

    def scope(self, permission: str) -> str | None:
        """``"all"``, ``"own"`` or None when the permission is not granted."""
        return self.grants.get(permission)


def actor_identity(actor) -> tuple[int | None, str]:
    """``(user id, label)`` of whoever acts: an :class:`Access`, a user, or None for the system."""
    if actor is None:
        return None, ""
    if isinstance(actor, Access):
        return actor.user_id, actor.label
    if getattr(actor, "is_authenticated", False):
        return actor.pk, getattr(actor, "email", "")
    return None, str(getattr(actor, "name", "") or "")


def _cache():
    return caches["control"]


def _version_key(scope: str | int) -> str:
    return f"authz:version:{scope}"


def _versions(organization_id: int) -> str | None:
    """The organization's and the global version tokens, or None when the cache cannot tell them."""
    cache = _cache()
    keys = [_version_key(organization_id), _version_key(GLOBAL)]
    found = cache.get_many(keys)
    for key in keys:
        if key not in found:
            cache.add(key, uuid.uuid4().hex, None)
    if len(found) < len(keys):
        found = cache.get_many(keys)
    if len(found) < len(keys):
        return None
    return ":".join(str(found[key]) for key in keys)


def bump(organization_id: int | str = GLOBAL) -> None:
    """Invalidate cached decisions of one organization (or of all, for plan edits): now and after commit."""

    def _bump() -> None:
        _cache().set(_version_key(organization_id), uuid.uuid4().hex, None)

    _bump()
    transaction.on_commit(_bump)


# Entries under keys that embed the version tokens never change while they live: a change makes new keys. So this
# process keeps the ones it has read, each until the shared entry's own end (stored with it), and a warm decision
# costs one cache round trip (the versions) instead of two. When the cache cannot tell the versions (unreachable),
# nothing is read, written or kept: every decision is made from PostgreSQL.
_LOCAL: dict[str, tuple[float, object]] = {}
_LOCAL_MAX_ENTRIES = 4096


def _remembered(kind: str, scope: str, organization_id: int, compute):
    """The entry ``authz:<kind>:<scope>`` under the organization's current versions. ``compute() -> (value, ttl)``
    runs on a miss; the value is shared through the cache for ``ttl`` seconds (stored as ``(until, value)``) and
    kept here no longer. Values are shared between the requests of a process: they are frozen, never mutated."""
    versions = _versions(organization_id)
    if versions is None:
        return compute()[0]
    key = f"authz:{kind}:{scope}:{versions}"
    now = clock()
    local = _LOCAL.get(key)
    if local is not None and local[0] > now:
        return local[1]
    stored = _cache().get(key)
    if stored is None:
        value, ttl = compute()
        stored = (now + ttl, value)
        _cache().set(key, stored, ttl)
    if stored[0] > now:
        if len(_LOCAL) >= _LOCAL_MAX_ENTRIES:
            for old in [k for k, (until, _value) in _LOCAL.items() if until <= now]:
                _LOCAL.pop(old, None)
            if len(_LOCAL) >= _LOCAL_MAX_ENTRIES:
                _LOCAL.clear()
        _LOCAL[key] = stored
    return stored[1]


def entitlements_for(*, organization) -> Entitlements:
    from billing.selectors import compute_entitlements

    def compute():
        entitlements, ttl = compute_entitlements(organization=organization)
        if ttl < CACHE_TTL_SECONDS:
            entitlements = replace(entitlements, valid_until=clock() + ttl)
        return entitlements, entitlements.ttl(CACHE_TTL_SECONDS)

    return _remembered("entitlements", str(organization.pk), organization.pk, compute)


def access_for(*, user, organization) -> Access | None:
    """The user's access to the organization, or None for a non-member. Costs no query once cached."""
    from .models import Membership

    if user is None or not user.is_authenticated or organization is None:
        return None

    def compute():
        membership = (
            Membership.objects.select_related("role")
            .filter(user_id=user.pk, organization_id=organization.pk, is_active=True)
            .first()
        )
        if membership is None:
            return _NONE, CACHE_TTL_SECONDS
        access = Access(
            organization_id=organization.pk,
            user_id=user.pk,
            membership_id=membership.pk,
            role_key=membership.role.key,
            role_name=membership.role.name,
            grants=membership.role.effective_grants(),
            entitlements=entitlements_for(organization=organization),
            label=user.email,
        )
        # The decision embeds the entitlements: it may not outlive them (an override or a trial ending).
        return access, access.entitlements.ttl(CACHE_TTL_SECONDS)

    cached = _remembered("user-access", f"{organization.pk}:{user.pk}", organization.pk, compute)
    return None if cached == _NONE else cached


def access_for_key(*, key, organization) -> Access | None:
    """An API key's access: its scopes, each capped by what its creator holds now. None if the creator left."""

    def compute():
        creator = access_for(user=key.created_by, organization=organization)
        if creator is None:
            return _NONE, CACHE_TTL_SECONDS
        grants = {}
        for code, scope in key.scopes.items():
            held = creator.grants.get(code)
            if held is not None:
                grants[code] = "own" if "own" in (held, scope) else "all"
        access = Access(
            organization_id=organization.pk,
            user_id=creator.user_id,
            membership_id=creator.membership_id,
            role_key=creator.role_key,
            role_name=creator.role_name,
            grants=grants,
            entitlements=creator.entitlements,
            label=f"API key {key.name}",
            principal="api_key",
            key_id=key.pk,
        )
        return access, access.entitlements.ttl(CACHE_TTL_SECONDS)

    cached = _remembered("key-access", f"{organization.pk}:{key.pk}", organization.pk, compute)
    return None if cached == _NONE else cached


def access_for_request(request) -> Access | None:
    """The caller's access to the request's organization, whether a signed-in user or an API key."""
    from identity.models import ApiKey

    if isinstance(request.auth, ApiKey):
        return access_for_key(key=request.auth, organization=request.tenant)
    return access_for(user=request.user, organization=request.tenant)
