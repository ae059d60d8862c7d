"""``usage.threshold_reached`` in the organization's outbox, when billing (below this layer) says a usage alert
was raised (``billing.alerts.usage_threshold_reached``).

Inside the organization's schema (a contact created, a campaign message sent) the event is recorded in the
transaction that raised the alert. From ``public`` (a seat taken by accepting an invitation) a tenant task records
it in the organization's schema once that transaction commits.
"""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from config.db import connection
from config.tasks import queue_after_commit
from rbac.actor import SystemActor

from . import outbox

EVENT = "usage.threshold_reached"
BILLING = SystemActor("usage alerts")


def _payload(alert) -> dict:
    return {
        "limit": alert.limit,
        "threshold": alert.threshold,
        "used": alert.used,
        "value": alert.value,
        "period_start": alert.period_start.isoformat(),
    }


def record_usage_threshold(sender, *, organization, alert, **kwargs) -> None:
    if connection.schema_name == organization.schema_name:
        outbox.record(EVENT, subject=alert, payload=_payload(alert), actor=BILLING)
        return
    # The owners were e-mailed all the same if the broker cannot take the message (logged).
    queue_after_commit(record_usage_threshold_task, in_schema=organization.schema_name, alert_id=alert.pk)


@shared_task(name="integrations.record_usage_threshold")
def record_usage_threshold_task(*, alert_id: int) -> int:
    from billing.models import UsageAlert

    from .models import OutboxEvent

    alert = UsageAlert.objects.filter(pk=alert_id).first()
    if alert is None or OutboxEvent.objects.filter(type=EVENT, subject_id=str(alert_id)).exists():
        return 0  # gone, or recorded by an earlier run
    with transaction.atomic():
        outbox.record(EVENT, subject=alert, payload=_payload(alert), actor=BILLING)
    return 1
