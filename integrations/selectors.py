from django.db.models import Prefetch, QuerySet
from django_tenants.utils import schema_context

from config.db import connection

from .models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def events_about(*, subject_type: str, subject_id) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(subject_type=subject_type, subject_id=str(subject_id))


def events() -> QuerySet[OutboxEvent]:
    """The organization's event log, newest first."""
    return OutboxEvent.objects.order_by("-occurred_at", "-id")


def webhook_endpoints() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.all()


def webhook_endpoint_count(organization) -> int:
    """Endpoints of ``organization``: the usage counter of ``Limit.WEBHOOK_ENDPOINTS``. Billing also asks from
    the public schema, so it reads the organization's own schema explicitly."""
    if connection.schema_name == organization.schema_name:
        return WebhookEndpoint.objects.count()
    with schema_context(organization.schema_name):
        return WebhookEndpoint.objects.count()


def webhook_deliveries(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The endpoint's delivery log, newest first, with every attempt: a constant number of queries."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .order_by("-created_at", "-id")
        .prefetch_related(Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("-attempted_at", "-id")))
    )
