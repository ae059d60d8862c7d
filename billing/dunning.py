"""Dunning (beat's ``billing-dunning``): a past-due subscription keeps its plan for ``BILLING_GRACE_DAYS``, then the
organization moves to Free (every record kept: the read-only rule of docs/decisions/0014-payments.md) and its
provider subscription is canceled; downgrades due at the end of the paid period apply."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.tasks import queue_after_commit

from .choices import SubscriptionStatus
from .errors import PlanNotFound
from .models import Subscription
from .notify import email_owners
from .payments import is_paid
from .selectors import FALLBACK_PLAN, plan_by_code
from .services import _move, _saved, _set_period, _snapshot


def detach_from_provider(subscription: Subscription) -> None:
    """The subscription no longer follows the provider's (to be saved by the caller): nothing scheduled, and the
    provider's subscription canceled once the transaction commits (retried while it is unreachable)."""
    from .tasks import cancel_provider_subscription_task

    canceled = subscription.provider_subscription_id
    subscription.provider_subscription_id, subscription.cancel_at_period_end = "", False
    subscription.scheduled_plan, subscription.scheduled_interval = None, ""
    if canceled:
        queue_after_commit(cancel_provider_subscription_task, subscription_id=canceled)


def subscription_dunning(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Past-due subscriptions whose grace (``BILLING_GRACE_DAYS``) is over move to Free, and their provider
    subscription is canceled; downgrades due at the period's end apply. Idempotent."""
    now = now or timezone.now()
    fallback = plan_by_code(code=FALLBACK_PLAN)
    if fallback is None:
        raise PlanNotFound(f"The fallback plan {FALLBACK_PLAN!r} is missing.")
    grace_over = now - datetime.timedelta(days=settings.BILLING_GRACE_DAYS)
    downgraded = applied = 0
    due = Subscription.objects.filter(status=SubscriptionStatus.PAST_DUE, past_due_since__lte=grace_over)
    for pk in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            subscription = (
                Subscription.objects.select_for_update(of=("self",)).select_related("plan", "organization").get(pk=pk)
            )
            if (
                subscription.status != SubscriptionStatus.PAST_DUE
                or not subscription.past_due_since
                or subscription.past_due_since > grace_over
            ):
                continue
            before = _snapshot(subscription)
            former = subscription.plan.name
            subscription.plan = fallback
            _move(subscription, SubscriptionStatus.ACTIVE)
            subscription.past_due_since = subscription.trial_ends_at = None
            detach_from_provider(subscription)
            subscription.provider_event_at = now  # the old subscription's late events change nothing
            _set_period(subscription, now)
            _saved(subscription, before=before, actor=None, action="subscription.dunning_downgraded")
            email_owners(
                subscription.organization,
                subject="Moved to the Free plan",
                body=(
                    f"The payment for {former} stayed unpaid for {settings.BILLING_GRACE_DAYS} days, so the "
                    "organization is on the Free plan now. Every record is kept; what is over Free's limits is "
                    "read-only until usage is reduced or a paid plan is chosen again."
                ),
            )
            downgraded += 1
    scheduled = Subscription.objects.filter(scheduled_plan__isnull=False, current_period_end__lte=now)
    for pk in list(scheduled.values_list("pk", flat=True)):
        with transaction.atomic():
            subscription = (
                Subscription.objects.select_for_update(of=("self",)).select_related("plan", "organization").get(pk=pk)
            )
            if (
                subscription.scheduled_plan_id is None
                or not subscription.current_period_end
                or subscription.current_period_end > now
            ):
                continue
            before = _snapshot(subscription)
            subscription.plan = subscription.scheduled_plan  # type: ignore[assignment]
            subscription.interval = subscription.scheduled_interval or subscription.interval
            subscription.scheduled_plan, subscription.scheduled_interval = None, ""
            if not is_paid(subscription.plan):
                subscription.provider_subscription_id, subscription.cancel_at_period_end = "", False
                subscription.provider_event_at = now
            _set_period(subscription, subscription.current_period_end)
            _saved(subscription, before=before, actor=None, action="subscription.scheduled_change_applied")
            applied += 1
    return {"downgraded": downgraded, "scheduled_applied": applied}
