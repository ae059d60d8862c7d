"""Writes of webhook endpoints and deliveries. Every function is atomic; side effects wait for the commit."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.features import Limit
from billing.services import enforce_limit
from rbac import audit
from rbac.actor import actor_identity
from tenants.selectors import current_organization

from . import signing, ssrf
from .choices import DeliveryStatus, DisabledReason
from .conf import setting
from .errors import ReplayTooLarge, UnknownEventType, WebhookEndpointDisabled
from .events import DIRECT_ONLY, EVENTS, PING
from .models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from .relay import dispatch_after_commit, dispatch_due_after_commit


def _clean_event_types(event_types: list[str]) -> list[str]:
    cleaned = sorted({name.strip() for name in event_types if name and name.strip()})
    if not cleaned:
        raise UnknownEventType('Subscribe to at least one event type, or to all with "*".', field="event_types")
    if "*" in cleaned:
        return ["*"]
    unknown = [name for name in cleaned if name not in EVENTS or name in DIRECT_ONLY]
    if unknown:
        raise UnknownEventType(f"Unknown event types: {', '.join(unknown)}.", field="event_types")
    return cleaned


def _snapshot(endpoint: WebhookEndpoint) -> dict:
    return {
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "is_active": endpoint.is_active,
    }


def _audit(endpoint: WebhookEndpoint, *, actor, action: str, before: dict | None = None, after=True) -> None:
    audit.record(
        organization=current_organization(),
        actor=actor,
        action=action,
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        before=before,
        after=_snapshot(endpoint) if after else None,
    )


@transaction.atomic
def webhook_endpoint_create(
    *, url: str, event_types: list[str], actor, description: str = "", is_active: bool = True
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint within the plan's limit. Returns it and its signing secret (shown once)."""
    target = ssrf.check_url(url)
    event_types = _clean_event_types(event_types)
    enforce_limit(organization=current_organization(), limit=Limit.WEBHOOK_ENDPOINTS)
    secret = signing.generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=target.url,
        event_types=event_types,
        description=description.strip(),
        is_active=is_active,
        disabled_at=None if is_active else timezone.now(),
        disabled_reason="" if is_active else DisabledReason.MANUAL,
        secret=secret,
        created_by_id=actor_identity(actor)[0],
    )
    _audit(endpoint, actor=actor, action="webhook_endpoint.created")
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    before = _snapshot(endpoint)
    fields: set[str] = set()
    if url is not None and url.strip() != endpoint.url:
        endpoint.url = ssrf.check_url(url).url
        fields.add("url")
    if event_types is not None:
        endpoint.event_types = _clean_event_types(event_types)
        fields.add("event_types")
    if description is not None:
        endpoint.description = description.strip()
        fields.add("description")
    if is_active is not None and is_active != endpoint.is_active:
        endpoint.is_active = is_active
        endpoint.failing_since = None
        endpoint.disabled_at = None if is_active else timezone.now()
        endpoint.disabled_reason = "" if is_active else DisabledReason.MANUAL
        endpoint.disabled_notified_at = None
        fields |= {"is_active", "failing_since", "disabled_at", "disabled_reason", "disabled_notified_at"}
    if fields:
        endpoint.save(update_fields=[*fields, "updated_at"])
        _audit(endpoint, actor=actor, action="webhook_endpoint.updated", before=before)
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor) -> None:
    _audit(endpoint, actor=actor, action="webhook_endpoint.deleted", before=_snapshot(endpoint), after=False)
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing (a second signature) for the grace period."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    grace = timedelta(seconds=float(setting("WEBHOOK_SECRET_ROTATION_GRACE_SECONDS")))
    secret = signing.generate_secret()
    endpoint.previous_secret, endpoint.previous_secret_expires_at = endpoint.secret, timezone.now() + grace
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    _audit(endpoint, actor=actor, action="webhook_endpoint.secret_rotated")
    return endpoint, secret


def _require_active(endpoint: WebhookEndpoint) -> None:
    if not endpoint.is_active:
        raise WebhookEndpointDisabled()


@transaction.atomic
def webhook_endpoint_ping(*, endpoint: WebhookEndpoint, actor) -> WebhookDelivery:
    """Send a ``webhook.ping`` event to this endpoint only (whatever it subscribes to)."""
    _require_active(endpoint)
    actor_id, actor_label = actor_identity(actor)
    now = timezone.now()
    event = OutboxEvent.objects.create(
        type=PING,
        subject_type=str(WebhookEndpoint._meta.model_name),
        subject_id=str(endpoint.pk),
        actor_id=actor_id,
        actor_label=actor_label,
        payload={"endpoint_id": endpoint.pk, "message": "Test event: your endpoint receives and can verify webhooks."},
        relayed_at=now,  # not fanned out: delivered below, to this endpoint alone
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event=event, event_type=PING, next_attempt_at=now, dispatched_at=now
    )
    dispatch_after_commit([delivery.pk])
    return delivery


def _restart(delivery_ids: list[int], *, now) -> None:
    WebhookDelivery.objects.filter(pk__in=delivery_ids).update(
        status=DeliveryStatus.PENDING, schedule_step=0, next_attempt_at=now, dispatched_at=now, delivered_at=None
    )
    dispatch_after_commit(delivery_ids)


@transaction.atomic
def webhook_delivery_retry(*, delivery: WebhookDelivery, actor=None) -> WebhookDelivery:
    """Attempt again now, with a fresh retry schedule; the webhook-id stays the same."""
    _require_active(delivery.endpoint)
    locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    _restart([locked.pk], now=timezone.now())
    locked.refresh_from_db()
    return locked


@transaction.atomic
def webhook_endpoint_replay(*, endpoint: WebhookEndpoint, since: datetime, actor=None) -> int:
    """Deliver again every event the endpoint subscribes to that happened at or after ``since`` (already
    delivered ones too, with their original webhook-id). Returns how many deliveries were queued."""
    _require_active(endpoint)
    events = OutboxEvent.objects.filter(occurred_at__gte=since).exclude(relayed_at=None).exclude(type__in=DIRECT_ONLY)
    if "*" not in endpoint.event_types:
        events = events.filter(type__in=endpoint.event_types)
    cap = int(setting("WEBHOOK_REPLAY_MAX_EVENTS"))
    found = list(events.order_by("occurred_at", "id").values_list("id", "type")[: cap + 1])
    if len(found) > cap:
        raise ReplayTooLarge(f"More than {cap} events since then; replay from a later time.", field="since")
    now = timezone.now()
    rows = [
        WebhookDelivery(
            endpoint_id=endpoint.pk,
            event_id=event_id,
            event_type=event_type,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            dispatched_at=None,  # queued in the background by deliveries_dispatch_due
        )
        for event_id, event_type in found
    ]
    saved = WebhookDelivery.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["endpoint", "event"],
        update_fields=["status", "schedule_step", "next_attempt_at", "dispatched_at", "delivered_at"],
    )
    if saved:
        dispatch_due_after_commit()
    _audit(endpoint, actor=actor, action="webhook_endpoint.replayed")
    return len(saved)
