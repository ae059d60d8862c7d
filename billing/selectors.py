from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from rbac.access import Entitlements

from .choices import SubscriptionStatus
from .features import Limit
from .models import Override, Plan, Subscription
from .usage import counted_limits, counter_for

FALLBACK_PLAN = "free"
# Recheck entitlements at least this often, so expiring overrides and trials end on time.
MAX_TTL_SECONDS = 300


def public_plans() -> QuerySet[Plan]:
    return Plan.objects.filter(is_public=True).prefetch_related("features", "limits")


def plan_by_code(*, code: str) -> Plan | None:
    return Plan.objects.filter(code=code).first()


def cheapest_plan_with(*, feature: str) -> Plan | None:
    return Plan.objects.filter(is_public=True, features__code=feature).order_by("monthly_price", "sort_order").first()


def subscription_of(*, organization) -> Subscription | None:
    return Subscription.objects.select_related("plan").filter(organization_id=organization.pk).first()


def _plan_entitlements(plan: Plan) -> tuple[set[str], dict[str, int]]:
    features = set(plan.features.values_list("code", flat=True))
    limits = dict(plan.limits.values_list("limit", "value"))
    return features, limits


def compute_entitlements(*, organization) -> tuple[Entitlements, int]:
    """The organization's entitlements and how many seconds they stay valid."""
    now = timezone.now()
    ttl = MAX_TTL_SECONDS
    subscription = subscription_of(organization=organization)
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
        if override.feature_id:
            (features.add if override.enabled else features.discard)(override.feature.code)
        elif override.limit:
            limits[override.limit] = override.limit_value
    entitlements = Entitlements(
        plan_code=plan.code if plan else "",
        plan_name=plan.name if plan else "",
        subscription_status=status,
        features=frozenset(features),
        limits=limits,
    )
    return entitlements, max(ttl, 1)


def every_limit(limits: dict[str, int]) -> dict[str, int | None]:
    """Every limit of the registry with its value; ``None`` where there is none, which means unlimited (a plan
    has no row for a limit it does not cap). The plans, subscription and usage endpoints all say it so."""
    return {item.value: limits.get(item.value) for item in Limit}


def usage_of(*, organization, limits: dict[str, int]) -> list[dict]:
    """Each known limit with its value (None: unlimited) and current usage (None: not counted here)."""
    rows = []
    for name, value in every_limit(limits).items():
        counter = counter_for(name)
        rows.append(
            {
                "limit": name,
                "value": value,
                "used": counter(organization) if counter and name in counted_limits() else None,
            }
        )
    return rows


def subscription_for(*, organization) -> Subscription:
    """The organization's subscription; one without a subscription row is shown on the free plan."""
    found = subscription_of(organization=organization)
    if found is None:
        found = Subscription(
            organization=organization,
            plan=plan_by_code(code=FALLBACK_PLAN),
            status=SubscriptionStatus.ACTIVE,
            current_period_start=organization.created_at,
        )
    return found
