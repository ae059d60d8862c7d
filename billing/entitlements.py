"""What an organization's plan allows, with its overrides: computed here, cached with the authorization
decisions (:mod:`config.decision_cache`), so a warm request reads them without a query."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from time import time as clock

from django.utils import timezone

from config.decision_cache import CACHE_TTL_SECONDS, remembered

from .choices import SubscriptionStatus
from .models import Override, Plan
from .selectors import FALLBACK_PLAN, plan_by_code, subscription_or_none

# Recheck entitlements at least this often, so expiring overrides and trials end on time.
MAX_TTL_SECONDS = 300


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

    def ttl(self, ceiling: int = CACHE_TTL_SECONDS) -> int:
        """Seconds a decision built on these entitlements may be cached: never past ``valid_until``."""
        if not self.valid_until:
            return ceiling
        return max(1, min(ceiling, int(self.valid_until - clock()) + 1))

    def has(self, feature: str) -> bool:
        return feature in self.features

    def limit(self, name: str) -> int | None:
        return self.limits.get(name)


def _plan_entitlements(plan: Plan) -> tuple[set[str], dict[str, int]]:
    features = set(plan.features.values_list("code", flat=True))
    limits = dict(plan.limits.values_list("limit", "value"))
    return features, limits


def compute_entitlements(*, organization) -> tuple[Entitlements, int]:
    """The organization's entitlements and how many seconds they stay valid."""
    now = timezone.now()
    ttl = MAX_TTL_SECONDS
    subscription = subscription_or_none(organization=organization)
    plan = subscription.plan if subscription else None
    status = subscription.status if subscription else SubscriptionStatus.ACTIVE
    if subscription and status == SubscriptionStatus.TRIALING and subscription.trial_ends_at:
        if subscription.trial_ends_at <= now:
            plan, status = None, SubscriptionStatus.ACTIVE  # the trial is over even if the sweep has not run yet
        else:
            ttl = min(ttl, int((subscription.trial_ends_at - now).total_seconds()) + 1)
    if plan is None or status == SubscriptionStatus.CANCELED:
        plan = plan_by_code(code=FALLBACK_PLAN)
    features, limits = _plan_entitlements(plan) if plan else (set(), {})

    overrides = Override.objects.filter(organization_id=organization.pk).select_related("feature")
    for override in overrides:
        if override.expires_at and override.expires_at <= now:
            continue
        if override.expires_at:
            ttl = min(ttl, int((override.expires_at - now).total_seconds()) + 1)
        if override.feature is not None:  # selected with the override: no query
            (features.add if override.enabled else features.discard)(override.feature.code)
        elif override.limit and override.limit_value is not None:
            limits[override.limit] = override.limit_value
    entitlements = Entitlements(
        plan_code=plan.code if plan else "",
        plan_name=plan.name if plan else "",
        subscription_status=status,
        features=frozenset(features),
        limits=limits,
    )
    return entitlements, max(ttl, 1)


def entitlements_for(*, organization, fresh: bool = False) -> Entitlements:
    """The organization's entitlements; no query once cached, and never cached past a trial's or an override's
    end. ``fresh``: as they are now, even if the request has read older ones (``decision_cache.remembered``)."""

    def compute():
        entitlements, ttl = compute_entitlements(organization=organization)
        if ttl < CACHE_TTL_SECONDS:
            entitlements = replace(entitlements, valid_until=clock() + ttl)
        return entitlements, entitlements.ttl(CACHE_TTL_SECONDS)

    return remembered("entitlements", str(organization.pk), organization.pk, compute, fresh=fresh)
