"""Audited control-plane lookups behind every authorization decision, cached with versioned keys.

Everything the decision needs for a (user, organization) pair, the membership, the role's grants and the
organization's entitlements (``billing.entitlements``), is computed once and cached under keys that embed the
organization's and the global version tokens (:mod:`config.decision_cache`): a change applies on the very next
request, and a warm request costs no SQL query at all. A cached decision never outlives the entitlements it
embeds: when a trial or an override ends sooner than the cache TTL, the entry expires then.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.entitlements import Entitlements, entitlements_for
from config.api.credentials import organization_credential
from config.decision_cache import CACHE_TTL_SECONDS, remembered

_NONE = "-"


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

    cached = remembered("user-access", f"{organization.pk}:{user.pk}", organization.pk, compute)
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

    cached = remembered("key-access", f"{organization.pk}:{key.pk}", organization.pk, compute)
    return None if cached == _NONE else cached


def access_for_request(request) -> Access | None:
    """The caller's access to the request's organization, whether a signed-in user or an API key."""
    key = organization_credential(request)
    if key is not None:
        return access_for_key(key=key, organization=request.tenant)
    return access_for(user=request.user, organization=request.tenant)
