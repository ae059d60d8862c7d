"""Subscriptions and limits. The subscription state machine lives here alone, so a payment provider's
webhook can drive it later through the same functions the API and the admin use."""

from __future__ import annotations

import zlib
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from rbac import audit
from rbac.access import bump, entitlements_for

from .choices import SubscriptionStatus
from .errors import DowngradeBlocked, PlanLimitReached, PlanNotFound, SamePlan
from .features import Limit
from .models import Override, Plan, Subscription
from .selectors import FALLBACK_PLAN, plan_by_code
from .usage import counter_for

SIGNUP_TRIAL_PLAN = "pro"
LIMIT_LOCK_NAMESPACE = 0x5EA7

# Allowed status transitions; anything else is a bug in the caller.
TRANSITIONS: dict[str, set[str]] = {
    SubscriptionStatus.TRIALING: {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED, SubscriptionStatus.PAST_DUE},
    SubscriptionStatus.ACTIVE: {SubscriptionStatus.PAST_DUE, SubscriptionStatus.CANCELED, SubscriptionStatus.TRIALING},
    SubscriptionStatus.PAST_DUE: {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED},
    SubscriptionStatus.CANCELED: {SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING},
}


def _snapshot(subscription: Subscription) -> dict:
    return {
        "plan": subscription.plan.code,
        "status": subscription.status,
        "interval": subscription.interval,
        "trial_ends_at": subscription.trial_ends_at.isoformat() if subscription.trial_ends_at else None,
    }


def _saved(subscription: Subscription, *, before: dict | None, actor, action: str) -> Subscription:
    subscription.save()
    audit.record(
        organization=subscription.organization,
        actor=actor,
        action=action,
        target_type="subscription",
        target_id=subscription.pk,
        before=before,
        after=_snapshot(subscription),
    )
    bump(subscription.organization_id)
    return subscription


@transaction.atomic
def subscription_start(*, organization, plan_code: str = SIGNUP_TRIAL_PLAN, actor=None) -> Subscription:
    """Start an organization's subscription: a trial when the plan has trial days, else active."""
    plan = plan_by_code(code=plan_code) or plan_by_code(code=FALLBACK_PLAN)
    if plan is None:
        raise PlanNotFound()
    now = timezone.now()
    subscription = Subscription(organization=organization, plan=plan, current_period_start=now)
    if plan.trial_days:
        subscription.status = SubscriptionStatus.TRIALING
        subscription.trial_ends_at = now + timedelta(days=plan.trial_days)
    return _saved(subscription, before=None, actor=actor, action="subscription.started")


def _locked(organization) -> Subscription:
    subscription = Subscription.objects.select_for_update().select_related("plan").filter(organization=organization)
    found = subscription.first()
    if found is None:
        return subscription_start(organization=organization, plan_code=FALLBACK_PLAN)
    return found


def _exceeded_limits(organization, plan: Plan) -> list[dict]:
    exceeded = []
    for name, value in plan.limits.values_list("limit", "value"):
        counter = counter_for(name)
        if counter is None:
            continue
        used = counter(organization)
        if used > value:
            exceeded.append({"limit": name, "value": value, "used": used})
    return exceeded


@transaction.atomic
def subscription_change_plan(*, organization, plan_code: str, actor, interval: str | None = None) -> Subscription:
    """Move to another plan now. A plan whose limits current usage exceeds is refused, naming what exceeds."""
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is None:
        raise PlanNotFound()
    subscription = _locked(organization)
    if subscription.plan_id == plan.pk and subscription.status != SubscriptionStatus.TRIALING:
        raise SamePlan()
    exceeded = _exceeded_limits(organization, plan)
    if exceeded:
        raise DowngradeBlocked(
            "Current usage exceeds the new plan's limits: "
            + ", ".join(f"{e['limit']} {e['used']} > {e['value']}" for e in exceeded),
            extra={"exceeded": exceeded},
        )
    before = _snapshot(subscription)
    now = timezone.now()
    subscription.plan = plan
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.trial_ends_at = None
    subscription.current_period_start = now
    subscription.canceled_at = None
    if interval:
        subscription.interval = interval
    return _saved(subscription, before=before, actor=actor, action="subscription.plan_changed")


@transaction.atomic
def subscription_transition(*, organization, status: str, actor=None) -> Subscription:
    """Change the subscription status along the allowed transitions (a provider webhook calls this)."""
    subscription = _locked(organization)
    if status == subscription.status:
        return subscription
    if status not in TRANSITIONS[subscription.status]:
        from config.api.errors import Conflict

        raise Conflict(f"A {subscription.status} subscription cannot become {status}.")
    before = _snapshot(subscription)
    subscription.status = status
    subscription.canceled_at = timezone.now() if status == SubscriptionStatus.CANCELED else None
    return _saved(subscription, before=before, actor=actor, action="subscription.status_changed")


@transaction.atomic
def subscription_extend_trial(*, organization, days: int, actor=None) -> Subscription:
    subscription = _locked(organization)
    before = _snapshot(subscription)
    base = max(subscription.trial_ends_at or timezone.now(), timezone.now())
    subscription.trial_ends_at = base + timedelta(days=days)
    subscription.status = SubscriptionStatus.TRIALING
    return _saved(subscription, before=before, actor=actor, action="subscription.trial_extended")


def subscription_expire_trials(*, now=None) -> int:
    """Trials that ended fall back to the free plan. Idempotent; run by beat."""
    now = now or timezone.now()
    fallback = plan_by_code(code=FALLBACK_PLAN)
    ended = list(
        Subscription.objects.filter(status=SubscriptionStatus.TRIALING, trial_ends_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    for pk in ended:
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update().select_related("plan", "organization").get(pk=pk)
            if subscription.status != SubscriptionStatus.TRIALING or subscription.trial_ends_at > now:
                continue
            before = _snapshot(subscription)
            subscription.plan = fallback
            subscription.status = SubscriptionStatus.ACTIVE
            subscription.trial_ends_at = None
            subscription.current_period_start = now
            _saved(subscription, before=before, actor=None, action="subscription.trial_ended")
    return len(ended)


def enforce_limit(*, organization, limit: Limit, adding: int = 1) -> None:
    """Refuse to go past the plan's limit. Call inside the creating transaction: it holds a lock until commit,
    so two concurrent creates at N-1 cannot both pass."""
    value = entitlements_for(organization=organization).limit(limit)
    if value is None:
        return
    counter = counter_for(limit)
    if counter is None:
        return
    key = zlib.crc32(f"{organization.pk}:{limit}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LIMIT_LOCK_NAMESPACE, key - 2**31])
    used = counter(organization)
    if used + adding > value:
        raise PlanLimitReached(
            f"Your plan allows {value} {limit.replace('_', ' ')}; you use {used}.",
            extra={"limit": str(limit), "value": value, "used": used},
        )


def _override_snapshot(override: Override) -> dict:
    return {
        "feature": override.feature.code if override.feature_id else None,
        "enabled": override.enabled,
        "limit": override.limit or None,
        "limit_value": override.limit_value,
        "expires_at": override.expires_at.isoformat() if override.expires_at else None,
    }


@transaction.atomic
def override_save(*, override: Override, actor) -> Override:
    """Create or change a per-organization override; it applies from the next request."""
    override.full_clean()
    before = None
    if override.pk:
        previous = Override.objects.select_related("feature").filter(pk=override.pk).first()
        before = _override_snapshot(previous) if previous else None
    override.save()
    audit.record(
        organization=override.organization,
        actor=actor,
        action="override.saved",
        target_type="override",
        target_id=override.pk,
        before=before,
        after=_override_snapshot(override),
    )
    bump(override.organization_id)
    return override


@transaction.atomic
def override_delete(*, override: Override, actor) -> None:
    before, organization, pk = _override_snapshot(override), override.organization, override.pk
    override.delete()
    audit.record(
        organization=organization,
        actor=actor,
        action="override.deleted",
        target_type="override",
        target_id=pk,
        before=before,
    )
    bump(organization.pk)


@transaction.atomic
def plan_changed(*, plan: Plan, actor) -> None:
    """An operator edited a plan, its features or limits: every organization sees it on the next request."""
    audit.record(
        organization=None,
        actor=actor,
        action="plan.changed",
        target_type="plan",
        target_id=plan.pk,
        after={
            "code": plan.code,
            "features": sorted(plan.features.values_list("code", flat=True)),
            "limits": dict(plan.limits.values_list("limit", "value")),
        },
    )
    bump()
