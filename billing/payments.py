"""Paid plans through the payment provider (Stripe): checkout, the customer portal, provider events driving the
subscription state machine, and dunning. Decision record: docs/decisions/0014-payments.md.

- An Owner asking for a paid plan gets a checkout URL; the plan becomes active when the provider's event says the
  payment went through (:func:`provider_event_process`), never before. Without a provider: 402
  ``payment_provider_not_configured`` (paid plans then come from trials and the admin only).
- A downgrade is refused (409 ``downgrade_blocked``) while usage exceeds the lower plan's limits; otherwise it is
  scheduled and takes effect at the end of the paid period.
- Each provider event is processed once (its id is stored in the same transaction as its effect) and in order (an
  event older than the newest one applied to the subscription changes nothing).
- Past due: owners are e-mailed; ``BILLING_GRACE_DAYS`` later beat's dunning moves the organization to Free,
  keeping every record (over Free's limits nothing new can be added: the read-only rule of the decision record).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import provider
from .choices import BillingInterval, SubscriptionStatus
from .errors import (
    InvalidTransition,
    NoBillingAccount,
    PaymentProviderNotConfigured,
    PlanNotFound,
    PlanNotPurchasable,
    SamePlan,
    SubscriptionPastDue,
)
from .models import Plan, ProviderEvent, Subscription
from .notify import email_owners
from .selectors import plan_by_code, subscription_or_none
from .services import (
    _locked,
    _move,
    _saved,
    _set_period,
    _snapshot,
    refuse_downgrade_past_limits,
    subscription_change_plan,
)

logger = logging.getLogger(__name__)

LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)


def is_paid(plan: Plan) -> bool:
    return bool(plan.monthly_price or plan.yearly_price)


def price_of(plan: Plan, interval: str) -> str:
    return plan.provider_yearly_price if interval == BillingInterval.YEARLY else plan.provider_monthly_price


def _rank(plan: Plan, interval: str) -> tuple:
    return (plan.monthly_price, plan.sort_order, interval == BillingInterval.YEARLY)


@dataclass(frozen=True)
class PlanChange:
    """What a plan change request did: ``changed`` now, ``scheduled`` for the period's end, ``checkout`` (pay at
    ``checkout_url``, the plan applies once paid) or ``pending`` (an upgrade invoiced; it applies once paid)."""

    outcome: str
    subscription: Subscription
    checkout_url: str = ""


@transaction.atomic
def subscription_request_change(
    *, organization, plan_code: str, actor, interval: str | None = None, email: str = ""
) -> PlanChange:
    """An Owner's plan change (``POST /billing/subscription/change-plan/``)."""
    plan = plan_by_code(code=plan_code)
    if plan is None:
        raise PlanNotFound()
    subscription = _locked(organization)
    interval = interval or subscription.interval
    provider_live = bool(subscription.provider_subscription_id) and subscription.status in LIVE
    same = subscription.plan_id == plan.pk and interval == subscription.interval
    if same and subscription.status != SubscriptionStatus.TRIALING and subscription.scheduled_plan_id is None:
        raise SamePlan()
    if not is_paid(plan):
        if not provider_live:
            return PlanChange(
                "changed",
                subscription_change_plan(
                    organization=organization, plan_code=plan.code, actor=actor, interval=interval
                ),
            )
        refuse_downgrade_past_limits(organization, plan)
        provider.subscription_cancel_at_period_end(subscription_id=subscription.provider_subscription_id)
        return PlanChange("scheduled", _schedule(subscription, plan, interval, actor=actor, cancel_at_period_end=True))
    if not provider.configured():
        raise PaymentProviderNotConfigured()
    if provider_live and subscription.status == SubscriptionStatus.PAST_DUE:
        raise SubscriptionPastDue()  # a second subscription would not settle the first one's debt
    price = price_of(plan, interval)
    if not price:
        raise PlanNotPurchasable(f"{plan.name} has no {interval} price at the payment provider.")
    refuse_downgrade_past_limits(organization, plan)
    metadata = {"organization": str(organization.pk), "plan": plan.code, "interval": interval}
    if provider_live:
        if same and subscription.scheduled_plan_id is not None:  # back to the current plan: drop the downgrade
            if subscription.cancel_at_period_end:
                provider.subscription_cancel_at_period_end(
                    subscription_id=subscription.provider_subscription_id, cancel=False
                )
            else:
                provider.subscription_change_price(
                    subscription_id=subscription.provider_subscription_id, price=price, metadata=metadata, upgrade=False
                )
            return PlanChange("changed", _schedule(subscription, None, "", actor=actor))
        upgrade = _rank(plan, interval) > _rank(subscription.plan, subscription.interval)
        provider.subscription_change_price(
            subscription_id=subscription.provider_subscription_id, price=price, metadata=metadata, upgrade=upgrade
        )
        if upgrade:
            _audit_request(
                subscription, actor=actor, action="subscription.upgrade_requested", plan=plan, interval=interval
            )
            return PlanChange("pending", subscription)
        return PlanChange("scheduled", _schedule(subscription, plan, interval, actor=actor))
    # No live provider subscription (a trial, an operator's grant, Free, canceled): pay first. Paying during a
    # trial ends it: the paid period starts when the payment is confirmed.
    if not subscription.provider_customer_id:
        subscription.provider_customer_id = provider.customer_create(
            name=organization.name, email=email, organization_id=organization.pk
        )
        subscription.save(update_fields=["provider_customer_id", "updated_at"])
    metered = list(plan.meters.values_list("provider_price", flat=True))
    checkout = provider.checkout_session_create(
        customer_id=subscription.provider_customer_id,
        prices=[price],
        metered_prices=metered,
        metadata=metadata,
        trial_end=None,
    )
    _audit_request(subscription, actor=actor, action="subscription.checkout_started", plan=plan, interval=interval)
    return PlanChange("checkout", subscription, checkout_url=checkout.url)


def _audit_request(subscription: Subscription, *, actor, action: str, plan: Plan, interval: str) -> None:
    from config import audit

    audit.record(
        organization=subscription.organization,
        actor=actor,
        action=action,
        target_type="subscription",
        target_id=subscription.pk,
        before=_snapshot(subscription),
        after={**_snapshot(subscription), "requested_plan": plan.code, "requested_interval": interval},
    )


def _schedule(
    subscription: Subscription, plan: Plan | None, interval: str, *, actor, cancel_at_period_end: bool = False
) -> Subscription:
    before = _snapshot(subscription)
    subscription.scheduled_plan = plan
    subscription.scheduled_interval = interval if plan else ""
    subscription.cancel_at_period_end = cancel_at_period_end
    action = "subscription.downgrade_scheduled" if plan else "subscription.downgrade_unscheduled"
    return _saved(subscription, before=before, actor=actor, action=action)


def portal_url(*, organization) -> str:
    """The provider's customer portal (cards, invoices, cancellation) for the organization."""
    if not provider.configured():
        raise PaymentProviderNotConfigured("The payment provider is not configured here: there is no billing portal.")
    subscription = subscription_or_none(organization=organization)
    if subscription is None or not subscription.provider_customer_id:
        raise NoBillingAccount()
    return provider.portal_session_create(customer_id=subscription.provider_customer_id)


def invoices_of(*, organization) -> list[provider.Invoice]:
    subscription = subscription_or_none(organization=organization)
    if not provider.configured() or subscription is None or not subscription.provider_customer_id:
        return []
    return provider.invoices_of(customer_id=subscription.provider_customer_id)


# --- provider events ---


def _moment(epoch: Any) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC) if epoch else None


def _plan_for_price(price_id: str) -> tuple[Plan, str] | None:
    if not price_id:
        return None
    plan = Plan.objects.filter(provider_monthly_price=price_id).first()
    if plan is not None:
        return plan, BillingInterval.MONTHLY
    plan = Plan.objects.filter(provider_yearly_price=price_id).first()
    return (plan, BillingInterval.YEARLY) if plan is not None else None


def _items(obj: dict) -> list[dict]:
    return list(((obj.get("items") or {}).get("data")) or [])


def _subscription_id_of(obj: dict) -> str:
    if obj.get("object") == "subscription":
        return obj.get("id") or ""
    found = obj.get("subscription")
    if not found:  # invoices of recent API versions: parent.subscription_details.subscription
        found = ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    if isinstance(found, dict):
        found = found.get("id")
    return found or ""


def _locked_for(obj: dict) -> Subscription | None:
    """The subscription an event's object is about: by provider subscription id, else the organization in its
    metadata (set at checkout), else the provider customer."""
    metadata = obj.get("metadata") or {}
    subscriptions = Subscription.objects.select_for_update(of=("self",)).select_related("plan", "organization")
    provider_id = _subscription_id_of(obj)
    if provider_id:
        found = subscriptions.filter(provider_subscription_id=provider_id).first()
        if found is not None:
            return found
    organization_id = metadata.get("organization") or obj.get("client_reference_id")
    if organization_id and str(organization_id).isdigit():
        found = subscriptions.filter(organization_id=int(organization_id)).first()
        if found is not None:
            return found
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if customer:
        return subscriptions.filter(provider_customer_id=customer).first()
    return None


def provider_event_process(*, event: dict) -> str:
    """Apply one verified provider event, exactly once; what became of it: ``applied``, ``stale`` (older than the
    newest event applied to that subscription), ``ignored`` (not about a subscription we hold, or not one we act
    on) or ``duplicate`` (already processed)."""
    event_id, event_type = str(event.get("id") or ""), str(event.get("type") or "")
    created = _moment(event.get("created")) or timezone.now()
    obj = ((event.get("data") or {}).get("object")) or {}
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = ProviderEvent.objects.create(event_id=event_id, type=event_type, created=created, outcome="")
        except IntegrityError:
            return "duplicate"
        handler = HANDLERS.get(event_type)
        subscription = _locked_for(obj) if handler is not None else None
        if handler is None or subscription is None:
            outcome = "ignored"
        elif subscription.provider_event_at and created < subscription.provider_event_at:
            outcome = "stale"
        else:
            try:
                with transaction.atomic():
                    outcome = handler(subscription, obj, created)
            except InvalidTransition:
                logger.warning(
                    "provider event %s (%s) asks for a transition the state machine refuses", event_id, event_type
                )
                outcome = "ignored"
        record.organization_id = subscription.organization_id if subscription else None
        record.outcome = outcome
        record.save(update_fields=["organization", "outcome"])
    return outcome


def _applied(subscription: Subscription, created: datetime.datetime, *, before: dict, action: str) -> str:
    subscription.provider_event_at = created
    _saved(subscription, before=before, actor=None, action=action)
    return "applied"


def _enter_past_due(subscription: Subscription, now: datetime.datetime) -> None:
    if subscription.status == SubscriptionStatus.PAST_DUE and subscription.past_due_since:
        return
    _move(subscription, SubscriptionStatus.PAST_DUE)
    subscription.past_due_since = now
    until = now + datetime.timedelta(days=settings.BILLING_GRACE_DAYS)
    email_owners(
        subscription.organization,
        subject="Payment failed",
        body=(
            f"The payment for {subscription.plan.name} failed. Update the card in the billing portal by "
            f"{until:%Y-%m-%d}: after that the organization moves to the Free plan. Nothing is deleted, but what "
            "is over Free's limits becomes read-only and Free's features only remain."
        ),
    )


def _on_checkout_completed(subscription: Subscription, obj: dict, created: datetime.datetime) -> str:
    if obj.get("mode") != "subscription" or obj.get("payment_status") not in ("paid", "no_payment_required"):
        return "ignored"  # not paid yet (a delayed payment method): the subscription's own events follow
    metadata = obj.get("metadata") or {}
    plan = plan_by_code(code=metadata.get("plan") or "")
    if plan is None:
        return "ignored"
    before = _snapshot(subscription)
    subscription.provider_subscription_id = _subscription_id_of(obj) or subscription.provider_subscription_id
    customer = obj.get("customer")
    subscription.provider_customer_id = (customer.get("id") if isinstance(customer, dict) else customer) or (
        subscription.provider_customer_id
    )
    subscription.plan = plan
    subscription.interval = str(metadata.get("interval") or subscription.interval)
    _move(subscription, SubscriptionStatus.ACTIVE)
    subscription.trial_ends_at = subscription.canceled_at = subscription.past_due_since = None
    subscription.scheduled_plan, subscription.scheduled_interval, subscription.cancel_at_period_end = None, "", False
    _set_period(subscription, timezone.now())
    return _applied(subscription, created, before=before, action="subscription.checkout_completed")


def _on_subscription_changed(subscription: Subscription, obj: dict, created: datetime.datetime) -> str:
    status = obj.get("status")
    current = subscription.provider_subscription_id
    if obj.get("id") != current and status not in ("active", "trialing"):
        return "ignored"  # a subscription we do not hold (an old one, or one not paid yet)
    if status in ("canceled", "incomplete_expired"):
        return _provider_canceled(subscription, created)
    if status not in ("active", "trialing", "past_due", "unpaid"):
        return "ignored"  # incomplete (payment not confirmed), paused
    before = _snapshot(subscription)
    subscription.provider_subscription_id = obj.get("id") or current
    customer = obj.get("customer")
    if customer:
        subscription.provider_customer_id = str(customer.get("id") if isinstance(customer, dict) else customer)
    items = [
        item
        for item in _items(obj)
        if ((item.get("price") or {}).get("recurring") or {}).get("usage_type") != "metered"
    ]
    first = items[0] if items else {}
    period_start = _moment(first.get("current_period_start") or obj.get("current_period_start"))
    period_end = _moment(first.get("current_period_end") or obj.get("current_period_end"))
    mapped = _plan_for_price(((first.get("price") or {}).get("id")) or "")
    rolled_over = bool(
        subscription.current_period_end and period_start and period_start >= subscription.current_period_end
    )
    if subscription.scheduled_plan_id and rolled_over:
        subscription.plan = subscription.scheduled_plan  # type: ignore[assignment]
        subscription.interval = subscription.scheduled_interval or subscription.interval
        subscription.scheduled_plan, subscription.scheduled_interval = None, ""
    elif mapped is not None and not subscription.scheduled_plan_id:
        subscription.plan, subscription.interval = mapped
    subscription.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    if status == "trialing":
        _move(subscription, SubscriptionStatus.TRIALING)
        subscription.trial_ends_at = _moment(obj.get("trial_end"))
        subscription.past_due_since = None
    elif status == "active":
        _move(subscription, SubscriptionStatus.ACTIVE)
        subscription.trial_ends_at = subscription.past_due_since = subscription.canceled_at = None
    else:
        _enter_past_due(subscription, timezone.now())
    if period_start:
        subscription.current_period_start = period_start
        subscription.current_period_end = period_end
    return _applied(subscription, created, before=before, action="subscription.provider_updated")


def _provider_canceled(subscription: Subscription, created: datetime.datetime) -> str:
    before = _snapshot(subscription)
    subscription.provider_subscription_id = ""
    subscription.cancel_at_period_end = False
    subscription.past_due_since = None
    if subscription.scheduled_plan_id:  # the downgrade asked for, at the period's end
        subscription.plan = subscription.scheduled_plan  # type: ignore[assignment]
        subscription.scheduled_plan, subscription.scheduled_interval = None, ""
        _move(subscription, SubscriptionStatus.ACTIVE)
        subscription.canceled_at = None
        _set_period(subscription, timezone.now())
        return _applied(subscription, created, before=before, action="subscription.scheduled_change_applied")
    _move(subscription, SubscriptionStatus.CANCELED)
    subscription.canceled_at = timezone.now()
    return _applied(subscription, created, before=before, action="subscription.canceled")


def _on_subscription_deleted(subscription: Subscription, obj: dict, created: datetime.datetime) -> str:
    if not subscription.provider_subscription_id or obj.get("id") != subscription.provider_subscription_id:
        return "ignored"
    return _provider_canceled(subscription, created)


def _on_payment_failed(subscription: Subscription, obj: dict, created: datetime.datetime) -> str:
    if _subscription_id_of(obj) != subscription.provider_subscription_id or not subscription.provider_subscription_id:
        return "ignored"
    if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        return "ignored"
    before = _snapshot(subscription)
    _enter_past_due(subscription, timezone.now())
    return _applied(subscription, created, before=before, action="subscription.past_due")


def _on_invoice_paid(subscription: Subscription, obj: dict, created: datetime.datetime) -> str:
    if _subscription_id_of(obj) != subscription.provider_subscription_id or not subscription.provider_subscription_id:
        return "ignored"
    if subscription.status != SubscriptionStatus.PAST_DUE:
        return "ignored"
    before = _snapshot(subscription)
    _move(subscription, SubscriptionStatus.ACTIVE)
    subscription.past_due_since = None
    return _applied(subscription, created, before=before, action="subscription.payment_recovered")


HANDLERS = {
    "checkout.session.completed": _on_checkout_completed,
    "customer.subscription.created": _on_subscription_changed,
    "customer.subscription.updated": _on_subscription_changed,
    "customer.subscription.deleted": _on_subscription_deleted,
    "invoice.payment_failed": _on_payment_failed,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_succeeded": _on_invoice_paid,
}
