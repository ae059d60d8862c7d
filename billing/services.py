"""Subscriptions and limits. The subscription state machine lives here alone: the admin, trials, and the payment
provider's webhook (:mod:`billing.payments`) all move it through :func:`_move` and record it with :func:`_saved`."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from config import audit
from config.decision_cache import invalidate_decisions
from config.locks import LockNamespace, xact_lock

from .alerts import usage_check
from .choices import BillingInterval, SubscriptionStatus
from .entitlements import entitlements_for
from .errors import (
    DowngradeBlocked,
    InvalidTransition,
    NoTrialToExtend,
    PlanLimitReached,
    PlanNotFound,
    SamePlan,
)
from .features import CONSUMPTION_LIMITS, Limit
from .models import Override, Plan, Subscription
from .selectors import FALLBACK_PLAN, plan_by_code
from .usage import counter_for

SIGNUP_TRIAL_PLAN = "pro"

# Allowed status transitions; anything else is a bug in the caller.
TRANSITIONS: dict[str, set[str]] = {
    SubscriptionStatus.TRIALING: {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED, SubscriptionStatus.PAST_DUE},
    SubscriptionStatus.ACTIVE: {SubscriptionStatus.PAST_DUE, SubscriptionStatus.CANCELED, SubscriptionStatus.TRIALING},
    SubscriptionStatus.PAST_DUE: {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED},
    SubscriptionStatus.CANCELED: {SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING},
}


def _move(subscription: Subscription, status: str) -> None:
    """The state machine's one door: refuse a status change :data:`TRANSITIONS` does not allow."""
    if status != subscription.status and status not in TRANSITIONS[subscription.status]:
        raise InvalidTransition(f"A {subscription.status} subscription cannot become {status}.")
    subscription.status = status


def _add_months(moment, months: int):
    import calendar

    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _set_period(subscription: Subscription, start) -> None:
    """The current period: the trial while trialing, one month or year of a paid plan, open-ended when free."""
    subscription.current_period_start = start
    if subscription.status == SubscriptionStatus.TRIALING:
        subscription.current_period_end = subscription.trial_ends_at
    elif not (subscription.plan.monthly_price or subscription.plan.yearly_price):
        subscription.current_period_end = None
    else:
        months = 12 if subscription.interval == BillingInterval.YEARLY else 1
        subscription.current_period_end = _add_months(start, months)


def _snapshot(subscription: Subscription) -> dict:
    return {
        "plan": subscription.plan.code,
        "status": subscription.status,
        "interval": subscription.interval,
        "trial_ends_at": subscription.trial_ends_at.isoformat() if subscription.trial_ends_at else None,
        "scheduled_plan": subscription.scheduled_plan.code if subscription.scheduled_plan is not None else None,
        "provider_subscription": subscription.provider_subscription_id or None,
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
    invalidate_decisions(organization_id=subscription.organization_id)
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
    _set_period(subscription, now)
    return _saved(subscription, before=None, actor=actor, action="subscription.started")


def _locked(organization) -> Subscription:
    subscription = (
        Subscription.objects.select_for_update(of=("self",)).select_related("plan").filter(organization=organization)
    )
    found = subscription.first()
    if found is None:
        return subscription_start(organization=organization, plan_code=FALLBACK_PLAN)
    return found


def lock_limit(*, organization, limit: str) -> None:
    """The advisory lock that serializes everything counting one limit of one organization, until commit: take it
    before counting, as :func:`enforce_limit` does, so concurrent creates cannot pass the limit together."""
    xact_lock(LockNamespace.PLAN_LIMIT, organization.pk, limit)


def _limits_after_change(organization, plan: Plan) -> dict[str, int]:
    """The limits ``plan`` would give the organization: the plan's, with its live limit overrides on top."""
    limits = dict(plan.limits.values_list("limit", "value"))
    now = timezone.now()
    overrides = Override.objects.filter(organization_id=organization.pk, feature__isnull=True).exclude(limit="")
    for name, value, expires_at in overrides.values_list("limit", "limit_value", "expires_at"):
        if value is not None and (expires_at is None or expires_at > now):
            limits[name] = value
    return limits


def refuse_downgrade_past_limits(organization, plan: Plan) -> None:
    """409 ``downgrade_blocked`` naming each limit that current usage exceeds on ``plan`` (an Owner's downgrade
    is refused; a forced one, by dunning or a trial's end, keeps the data and only stops growth)."""
    exceeded = _exceeded_limits(organization, plan)
    if exceeded:
        raise DowngradeBlocked(
            "Current usage exceeds the new plan's limits: "
            + ", ".join(f"{e['limit']} {e['used']} > {e['value']}" for e in exceeded),
            extra={"exceeded": exceeded},
        )


def _exceeded_limits(organization, plan: Plan) -> list[dict]:
    exceeded = []
    for name, value in sorted(_limits_after_change(organization, plan).items()):
        counter = counter_for(name)
        if counter is None or name in CONSUMPTION_LIMITS:
            continue
        lock_limit(organization=organization, limit=name)  # creates in flight finish first, later ones see the new plan
        used = counter(organization)
        if used > value:
            exceeded.append({"limit": name, "value": value, "used": used})
    return exceeded


@transaction.atomic
def subscription_change_plan(*, organization, plan_code: str, actor, interval: str | None = None) -> Subscription:
    """Move to another plan now, without payment: the operators' door (the admin's actions) and the free plan's.
    Owners reach paid plans through :func:`billing.payments.subscription_request_change`, which takes payment
    first. A plan whose limits current usage exceeds is refused, naming what exceeds."""
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is None:
        raise PlanNotFound()
    subscription = _locked(organization)
    if subscription.plan_id == plan.pk and subscription.status != SubscriptionStatus.TRIALING:
        raise SamePlan()
    refuse_downgrade_past_limits(organization, plan)
    before = _snapshot(subscription)
    now = timezone.now()
    subscription.plan = plan
    _move(subscription, SubscriptionStatus.ACTIVE)
    subscription.trial_ends_at = None
    subscription.canceled_at = None
    subscription.scheduled_plan, subscription.scheduled_interval = None, ""
    subscription.past_due_since = None
    if interval:
        subscription.interval = interval
    _set_period(subscription, now)
    return _saved(subscription, before=before, actor=actor, action="subscription.plan_changed")


@transaction.atomic
def subscription_transition(*, organization, status: str, actor=None) -> Subscription:
    """Change the subscription status along the allowed transitions (operators, tests). Provider events move the
    status through :mod:`billing.payments`, with the same door (:func:`_move`) and audit (:func:`_saved`)."""
    subscription = _locked(organization)
    if status == subscription.status:
        return subscription
    before = _snapshot(subscription)
    _move(subscription, status)
    subscription.canceled_at = timezone.now() if status == SubscriptionStatus.CANCELED else None
    return _saved(subscription, before=before, actor=actor, action="subscription.status_changed")


@transaction.atomic
def subscription_extend_trial(*, organization, days: int, actor=None) -> Subscription:
    """Give ``days`` more of trial. A running trial is extended; an organization that is back on the free plan
    (or canceled) gets a new trial of the sign-up plan. A paying subscription has no trial to extend."""
    subscription = _locked(organization)
    before = _snapshot(subscription)
    now = timezone.now()
    if subscription.status == SubscriptionStatus.TRIALING:
        base, start = max(subscription.trial_ends_at or now, now), subscription.current_period_start
    elif subscription.plan.code == FALLBACK_PLAN or subscription.status == SubscriptionStatus.CANCELED:
        trial_plan = plan_by_code(code=SIGNUP_TRIAL_PLAN)
        if trial_plan is None:
            raise PlanNotFound()
        subscription.plan, subscription.canceled_at = trial_plan, None
        base = start = now
    else:
        raise NoTrialToExtend(f"The organization pays for {subscription.plan.name}; there is no trial to extend.")
    subscription.trial_ends_at = base + timedelta(days=days)
    _move(subscription, SubscriptionStatus.TRIALING)
    _set_period(subscription, start)
    return _saved(subscription, before=before, actor=actor, action="subscription.trial_extended")


def subscription_expire_trials(*, now=None) -> int:
    """Trials that ended fall back to the free plan. Idempotent; run by beat."""
    now = now or timezone.now()
    fallback = plan_by_code(code=FALLBACK_PLAN)
    if fallback is None:
        raise PlanNotFound(f"The fallback plan {FALLBACK_PLAN!r} is missing.")
    ended = list(
        Subscription.objects.filter(status=SubscriptionStatus.TRIALING, trial_ends_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    expired = 0
    for pk in ended:
        with transaction.atomic():
            subscription = (
                Subscription.objects.select_for_update(of=("self",)).select_related("plan", "organization").get(pk=pk)
            )
            if subscription.status != SubscriptionStatus.TRIALING or subscription.trial_ends_at > now:
                continue
            before = _snapshot(subscription)
            subscription.plan = fallback
            _move(subscription, SubscriptionStatus.ACTIVE)
            subscription.trial_ends_at = None
            _set_period(subscription, now)
            _saved(subscription, before=before, actor=None, action="subscription.trial_ended")
            expired += 1
    return expired


def locked_limit(*, organization, limit: str) -> int | None:
    """The plan's value of ``limit`` (None: no limit), read under the limit's lock, which it takes until commit
    when there is a limit: concurrent consumers count one after the other, and a plan change that held the lock
    has committed (and invalidated the decisions) before the value is read again."""
    if entitlements_for(organization=organization).limit(limit) is None:
        return None
    lock_limit(organization=organization, limit=limit)
    return entitlements_for(organization=organization, fresh=True).limit(limit)


def limit_reached(*, limit: str, value: int, used: int) -> PlanLimitReached:
    """403 ``plan_limit_reached``: ``used`` of the ``value`` the plan allows of ``limit``."""
    return PlanLimitReached(
        f"Your plan allows {value} {limit.replace('_', ' ')}; you use {used}.",
        extra={"limit": str(limit), "value": value, "used": used},
    )


def enforce_limit(*, organization, limit: Limit, adding: int = 1) -> None:
    """Refuse to go past the plan's limit. Call inside the creating transaction: it holds a lock until commit,
    so two concurrent creates at N-1 cannot both pass."""
    counter = counter_for(limit)
    if counter is None:
        return
    value = locked_limit(organization=organization, limit=limit)
    if value is None:
        return
    used = counter(organization)
    if used + adding > value:
        raise limit_reached(limit=limit, value=value, used=used)
    usage_check(organization=organization, limit=str(limit), value=value, before=used, after=used + adding)


def _override_snapshot(override: Override) -> dict:
    return {
        "feature": override.feature.code if override.feature is not None else None,
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
    invalidate_decisions(organization_id=override.organization_id)
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
    invalidate_decisions(organization_id=organization.pk)


def plan_snapshot(plan: Plan) -> dict:
    """A plan as the audit trail records it: prices (ours and the provider's), trial, visibility, features, limits
    and priced meters."""
    return {
        "code": plan.code,
        "name": plan.name,
        "monthly_price": str(plan.monthly_price),
        "yearly_price": str(plan.yearly_price),
        "currency": plan.currency,
        "trial_days": plan.trial_days,
        "is_public": plan.is_public,
        "sort_order": plan.sort_order,
        "features": sorted(plan.features.values_list("code", flat=True)),
        "limits": dict(sorted(plan.limits.values_list("limit", "value"))),
        "provider_prices": {"monthly": plan.provider_monthly_price, "yearly": plan.provider_yearly_price},
        "meters": dict(sorted(plan.meters.values_list("meter", "provider_price"))),
    }


@transaction.atomic
def plan_changed(*, plan: Plan, actor, before: dict | None = None) -> None:
    """An operator edited a plan, its features or limits: every organization sees it on the next request.

    ``before`` is :func:`plan_snapshot` taken before the edit (None for a new plan)."""
    after = plan_snapshot(plan)
    audit.record(
        organization=None,
        actor=actor,
        action="plan.created" if before is None else "plan.changed",
        target_type="plan",
        target_id=plan.pk,
        before=before,
        after=after,
    )
    invalidate_decisions()


@transaction.atomic
def plan_deleted(*, before: dict, plan_id: int, actor) -> None:
    audit.record(
        organization=None, actor=actor, action="plan.deleted", target_type="plan", target_id=plan_id, before=before
    )
    invalidate_decisions()


@transaction.atomic
def organization_suspend_for_billing(*, organization, actor, reason: str = "") -> None:
    """An operator suspends an organization (e.g. unpaid): no request resolves to it from the next one on."""
    from tenants.services import organization_suspend

    before = organization.status
    organization = organization_suspend(organization=organization)
    audit.record(
        organization=organization,
        actor=actor,
        action="organization.suspended",
        target_type="organization",
        target_id=organization.pk,
        before={"status": before},
        after={"status": organization.status, "reason": reason},
    )
    invalidate_decisions(organization_id=organization.pk)


@transaction.atomic
def organization_reactivate_for_billing(*, organization, actor) -> None:
    from tenants.services import organization_reactivate

    before = organization.status
    organization = organization_reactivate(organization=organization)
    audit.record(
        organization=organization,
        actor=actor,
        action="organization.reactivated",
        target_type="organization",
        target_id=organization.pk,
        before={"status": before},
        after={"status": organization.status},
    )
    invalidate_decisions(organization_id=organization.pk)
