"""Usage alerts: an organization that reaches 80 % or 100 % of a limit is told, once per limit, threshold and
calendar month (UTC).

Checked where usage grows: :func:`billing.services.enforce_limit` (records stored: seats, contacts, deals, ...)
and :func:`billing.metering.usage_record` (consumption: co-pilot and campaign messages). A crossing writes a
:class:`~billing.models.UsageAlert` row in the growing transaction (its unique key makes it once per month), the
owners are e-mailed after commit, and :data:`usage_threshold_reached` is sent so the apps above (``integrations``)
record the ``usage.threshold_reached`` event in the organization's outbox.
"""

from __future__ import annotations

import datetime

from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from .choices import UsageThreshold
from .features import LIMIT_DESCRIPTIONS, Limit
from .models import UsageAlert
from .notify import email_owners

# Sent inside the transaction that crossed the threshold, with ``organization`` and ``alert`` (a UsageAlert).
usage_threshold_reached = Signal()


def period_start(now: datetime.datetime | None = None) -> datetime.date:
    """The calendar month (UTC) usage alerts and metered usage are counted in."""
    return (now or timezone.now()).astimezone(datetime.UTC).date().replace(day=1)


def crossed(*, value: int, before: int, after: int) -> list[int]:
    """The thresholds (percent) passed when usage grew from ``before`` to ``after`` of ``value``."""
    if value <= 0 or after <= before:
        return []
    return [int(t) for t in UsageThreshold.values if before * 100 < t * value <= after * 100]


def usage_check(*, organization, limit: str, value: int | None, before: int, after: int) -> list[UsageAlert]:
    """Record (and announce) the thresholds of ``limit`` this growth crossed, at most once a month each."""
    if value is None:
        return []
    alerts = []
    month = period_start()
    for threshold in crossed(value=value, before=before, after=after):
        try:
            with transaction.atomic():
                alert = UsageAlert.objects.create(
                    organization=organization,
                    limit=limit,
                    threshold=threshold,
                    period_start=month,
                    used=after,
                    value=value,
                )
        except IntegrityError:
            continue  # already told this month
        alerts.append(alert)
        name = LIMIT_DESCRIPTIONS.get(Limit(limit), limit) if limit in Limit._value2member_map_ else limit
        reached = "reached" if threshold >= 100 else f"{threshold} % used"
        email_owners(
            organization,
            subject=f"Plan limit {reached}: {name}",
            body=(
                f"{organization.name} uses {after} of the {value} allowed by its plan ({name}), {threshold} %.\n"
                + (
                    "Nothing more can be added until usage goes down or the plan changes."
                    if threshold >= 100
                    else "Consider a plan with more room before the limit is reached."
                )
            ),
        )
        usage_threshold_reached.send(sender=UsageAlert, organization=organization, alert=alert)
    return alerts
