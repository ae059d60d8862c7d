from __future__ import annotations

from django.db.models import QuerySet

from .choices import SubscriptionStatus
from .features import Limit
from .models import Plan, Subscription
from .usage import counted_limits, counter_for

FALLBACK_PLAN = "free"


def public_plans() -> QuerySet[Plan]:
    return Plan.objects.filter(is_public=True).prefetch_related("features", "limits")


def plan_by_code(*, code: str) -> Plan | None:
    return Plan.objects.filter(code=code).first()


def cheapest_plan_with(*, feature: str) -> Plan | None:
    return Plan.objects.filter(is_public=True, features__code=feature).order_by("monthly_price", "sort_order").first()


def subscription_or_none(*, organization) -> Subscription | None:
    """The organization's stored subscription, or None (an organization made before subscriptions existed)."""
    return Subscription.objects.select_related("plan").filter(organization_id=organization.pk).first()


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


def subscription_or_free_plan(*, organization) -> Subscription:
    """The subscription to show: the stored one, or, for an organization without one, an unsaved subscription
    to the free plan (what :func:`billing.entitlements.compute_entitlements` applies to it)."""
    found = subscription_or_none(organization=organization)
    if found is None:
        found = Subscription(
            organization=organization,
            plan=plan_by_code(code=FALLBACK_PLAN),
            status=SubscriptionStatus.ACTIVE,
            current_period_start=organization.created_at,
        )
    return found
