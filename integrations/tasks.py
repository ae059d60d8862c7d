"""Celery tasks of webhooks. Tenant tasks run in the schema of the organization that queued them; the beat
sweep (``webhooks-sweep`` in ``CELERY_BEAT_SCHEDULE``, every ``WEBHOOK_SWEEP_INTERVAL_SECONDS``) is a
control-plane task that fans out one tenant task per active organization.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from config.db import connection
from config.tasks import PublicTask
from tenants.tasks import queue_for_each_organization

from . import delivery, relay
from .models import WebhookEndpoint

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)
# Tenant tasks look their organization up by schema; remember it a minute instead of a query per delivery.
TENANT_CACHE_SECONDS = 60


@shared_task(name="integrations.relay_outbox", autoretry_for=TRANSIENT, tenant_cache_seconds=TENANT_CACHE_SECONDS)
def outbox_relay_task() -> int:
    relay.relay_started()
    return relay.outbox_relay()


@shared_task(
    name="integrations.deliver_webhook",
    autoretry_for=TRANSIENT,
    soft_time_limit=90,
    time_limit=120,
    tenant_cache_seconds=TENANT_CACHE_SECONDS,
)
def deliver_webhook_task(delivery_id: int) -> str:
    """One delivery (messages queued before deliveries went in batches, and manual use)."""
    return delivery.attempt(delivery_id=delivery_id)


@shared_task(
    name="integrations.deliver_webhooks",
    autoretry_for=TRANSIENT,
    soft_time_limit=90,
    time_limit=120,
    tenant_cache_seconds=TENANT_CACHE_SECONDS,
)
def deliver_webhooks_task(delivery_ids: list[int]) -> dict[str, int]:
    """A batch of deliveries (:func:`integrations.delivery.attempt_many`); returns how many ended how."""
    counts: dict[str, int] = {}
    for result in delivery.attempt_many(delivery_ids=delivery_ids).values():
        counts[result] = counts.get(result, 0) + 1
    return counts


@shared_task(name="integrations.dispatch_due_webhooks", autoretry_for=TRANSIENT)
def webhook_dispatch_due_task() -> int:
    return relay.deliveries_dispatch_due()


@shared_task(name="integrations.sweep_tenant", autoretry_for=TRANSIENT)
def outbox_sweep_task() -> dict[str, int]:
    """One tenant's safety net: relay what no commit hook relayed, queue due retries and lost messages."""
    return {"relayed": relay.outbox_relay(), "dispatched": relay.deliveries_dispatch_due()}


@shared_task(name="integrations.sweep", base=PublicTask, periodic=True)
def outbox_sweep_all_task() -> int:
    """Beat: queue :func:`outbox_sweep_task` for every active organization."""
    return queue_for_each_organization(outbox_sweep_task)


@shared_task(name="integrations.notify_endpoint_disabled", autoretry_for=(*TRANSIENT, OSError))
def notify_endpoint_disabled_task(endpoint_id: int) -> int:
    """E-mail the organization's owners that an endpoint was disabled for failing. Sends once per disabling."""
    from rbac.choices import SystemRole
    from rbac.selectors import members_of

    organization = connection.tenant
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        if endpoint is None or endpoint.is_active or endpoint.disabled_notified_at is not None:
            return 0
        owners = list(
            members_of(organization=organization)
            .filter(is_active=True, role__key=SystemRole.OWNER, role__organization=None)
            .values_list("user__email", flat=True)
        )
        if owners:
            failing = (endpoint.disabled_at or timezone.now()) - (endpoint.failing_since or timezone.now())
            hours = failing.total_seconds() / 3600
            send_mail(
                subject=f"Webhook endpoint disabled in {organization.name}",
                message=(
                    f"We disabled the webhook endpoint {endpoint.url} of {organization.name}: every delivery to it "
                    f"failed for {hours:.0f} hours.\n\n"
                    "Fix the receiver, enable the endpoint again, and replay the events you missed "
                    f"(POST /api/v1/webhooks/{endpoint.pk}/replay/).\n\n{settings.FRONTEND_URL}"
                ),
                from_email=None,
                recipient_list=owners,
            )
        endpoint.disabled_notified_at = timezone.now()
        endpoint.save(update_fields=["disabled_notified_at"])
    return len(owners)
