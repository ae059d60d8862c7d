"""Metered usage: what an organization consumes (co-pilot messages, campaign messages), counted per calendar month
(UTC) and reported to the payment provider where its plan prices the meter.

Other apps call one function when they consume::

    usage_record(organization=organization, meter=Meter.CAMPAIGN_MESSAGES, quantity=sent)

or, when the unit is refused past the plan's monthly limit at the moment it is used (a co-pilot message)::

    usage_consume(organization=organization, meter=Meter.COPILOT_MESSAGES)

Both add to the month's counter in one statement (an upsert: no read-modify-write race; ``usage_consume``'s
refuses to pass the limit, under the limit's lock as in :func:`billing.services.enforce_limit`), check the usage
alerts of the meter's limit (:data:`METER_LIMITS`), and leave the provider alone: beat's ``billing.report_usage``
sends what is not reported yet as meter events (:func:`usage_report`), each range once (the provider deduplicates by
identifier, and a failed report is retried with the same range).
"""

from __future__ import annotations

import datetime
import logging

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from . import provider
from .alerts import period_start, usage_check
from .choices import Meter, SubscriptionStatus
from .entitlements import entitlements_for
from .errors import PaymentProviderError, PaymentProviderUnavailable
from .features import Limit
from .models import MeteredUsage, PlanMeter, Subscription
from .services import limit_reached, locked_limit

logger = logging.getLogger(__name__)

# The monthly limit each meter consumes (billing.features.Limit): the plan's cap and the alerts' base.
METER_LIMITS: dict[str, Limit] = {
    Meter.COPILOT_MESSAGES: Limit.COPILOT_MESSAGES_PER_MONTH,
    Meter.CAMPAIGN_MESSAGES: Limit.CAMPAIGN_MESSAGES_PER_MONTH,
}

_TABLE = MeteredUsage._meta.db_table
# The month's row gains ``quantity``; with a ``limit`` (NULL for none), only while the total stays within it: past
# it, no row comes back.
_UPSERT = f"""
INSERT INTO {_TABLE} (organization_id, meter, period_start, quantity, reported, reporting, updated_at)
VALUES (%(organization)s, %(meter)s, %(period)s, %(quantity)s, 0, 0, %(now)s)
ON CONFLICT (organization_id, meter, period_start)
DO UPDATE SET quantity = {_TABLE}.quantity + EXCLUDED.quantity, updated_at = EXCLUDED.updated_at
WHERE %(limit)s::integer IS NULL OR {_TABLE}.quantity + EXCLUDED.quantity <= %(limit)s::integer
RETURNING quantity
"""


def usage_record(*, organization, meter: str, quantity: int) -> int:
    """Count ``quantity`` units of ``meter`` for the organization this month; the month's total."""
    meter = Meter(meter)
    if quantity <= 0:
        return used_this_period(organization=organization, meter=meter)
    with transaction.atomic(savepoint=False):
        value = entitlements_for(organization=organization).limit(METER_LIMITS[meter])
        return _add(organization, meter, quantity, value=value, cap=None)


def usage_consume(*, organization, meter: str, quantity: int = 1) -> int:
    """Count ``quantity`` units of ``meter`` now, refused past the plan's monthly limit: 403
    ``plan_limit_reached`` and nothing counted. The month's total. Call inside the consuming transaction."""
    meter = Meter(meter)
    with transaction.atomic(savepoint=False):
        value = locked_limit(organization=organization, limit=METER_LIMITS[meter])
        return _add(organization, meter, quantity, value=value, cap=value)


def _add(organization, meter: Meter, quantity: int, *, value: int | None, cap: int | None) -> int:
    """The upsert, refused past ``cap`` when there is one; then the usage alerts of ``value``."""
    limit = METER_LIMITS[meter]
    total = None
    if cap is None or quantity <= cap:
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                _UPSERT,
                {
                    "organization": organization.pk,
                    "meter": meter.value,
                    "period": period_start(now),
                    "quantity": quantity,
                    "now": now,
                    "limit": cap,
                },
            )
            row = cursor.fetchone()
        total = row[0] if row else None
    if total is None:
        assert cap is not None
        raise limit_reached(limit=limit, value=cap, used=used_this_period(organization=organization, meter=meter))
    usage_check(organization=organization, limit=limit, value=value, before=total - quantity, after=total)
    return total


def used_this_period(*, organization, meter: str) -> int:
    row = MeteredUsage.objects.filter(organization_id=organization.pk, meter=meter, period_start=period_start())
    return row.values_list("quantity", flat=True).first() or 0


def copilot_messages_this_month(organization) -> int:
    """The usage counter of ``Limit.COPILOT_MESSAGES_PER_MONTH`` (billing.usage)."""
    return used_this_period(organization=organization, meter=Meter.COPILOT_MESSAGES)


def _priced_meter(subscription: Subscription | None, meter: str) -> PlanMeter | None:
    if subscription is None or not subscription.provider_customer_id:
        return None
    if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, SubscriptionStatus.TRIALING):
        return None
    return PlanMeter.objects.filter(plan_id=subscription.plan_id, meter=meter).first()


def usage_report(*, now: datetime.datetime | None = None) -> int:
    """Report unreported metered usage of this month and the last to the provider; how many reports were sent.
    Usage of a meter the organization's plan does not price is marked reported (nothing to bill).

    The range being reported (``reported`` .. ``reporting``) is committed before the call, so a call that failed
    after the provider counted it is retried with the same range and identifier, which the provider counts once."""
    if not provider.configured():
        return 0
    now = now or timezone.now()
    this_month = period_start(now)
    last_month = (this_month - datetime.timedelta(days=1)).replace(day=1)
    pending = MeteredUsage.objects.filter(period_start__gte=last_month, quantity__gt=F("reported"))
    sent = 0
    for pk in list(pending.values_list("pk", flat=True)):
        with transaction.atomic():
            row = MeteredUsage.objects.select_for_update().get(pk=pk)
            if row.reporting <= row.reported:  # nothing in flight: report everything new
                row.reporting = row.quantity
                MeteredUsage.objects.filter(pk=pk).update(reporting=row.reporting)
            subscription = Subscription.objects.filter(organization_id=row.organization_id).first()
            priced = _priced_meter(subscription, row.meter)
        if priced is not None and subscription is not None:
            try:
                provider.meter_event_create(
                    event_name=priced.provider_event_name,
                    customer_id=subscription.provider_customer_id,
                    value=row.reporting - row.reported,
                    identifier=f"org{row.organization_id}-{row.meter}-{row.period_start:%Y%m}-{row.reported}-{row.reporting}",
                )
            except (PaymentProviderUnavailable, PaymentProviderError):
                logger.warning("metered usage of organization %s not reported yet", row.organization_id, exc_info=True)
                continue
            sent += 1
        MeteredUsage.objects.filter(pk=pk, reported__lt=row.reporting).update(reported=row.reporting)
    return sent
