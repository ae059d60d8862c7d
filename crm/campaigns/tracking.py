"""What providers tell us after sending: anymail's normalized tracking events (e-mail) and Twilio's status
callbacks and inbound messages (SMS, WhatsApp). Each request reaches the organization's schema through its host
(tenant resolution), after the URL's token and the provider's signature are checked (views.py)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db.models import F, Func, Value
from django.utils import timezone

from config.db import connection
from crm.models import Contact

from . import channels, services
from .choices import Channel, ConsentSource, ConsentStatus, DeliveryStatus
from .models import ConsentState, Delivery

logger = logging.getLogger(__name__)

# The order of a message's states: a late "delivered" never turns a bounce back, nor "sent" a delivery.
_RANK = {
    DeliveryStatus.SENDING: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.FAILED: 3,
    DeliveryStatus.BOUNCED: 3,
}


def _advance(delivery: Delivery, status: str, **timestamps) -> None:
    """Move the delivery forward (never back) and set the first time of each timestamp given."""
    now = timezone.now()
    updates: dict[str, Any] = {}
    if _RANK.get(DeliveryStatus(status), 0) > _RANK.get(DeliveryStatus(delivery.status), -1) or delivery.status in (
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENDING,
    ):
        updates["status"] = status
        if status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED) and delivery.sent_at is None:
            updates["sent_at"] = now
        if delivery.status == DeliveryStatus.SENDING:  # a reconciled in-flight message
            updates.update(claim_token=None, in_flight_at=None)
    for name, value in timestamps.items():
        if getattr(delivery, name) is None:
            updates[name] = value or now
    if updates:
        Delivery.objects.filter(pk=delivery.pk).update(**updates)


# --- e-mail (anymail's tracking signal) ---


def _delivery_for_email(event) -> Delivery | None:
    wanted = (event.metadata or {}).get("delivery")
    if wanted:
        try:
            return Delivery.objects.filter(uuid=uuid.UUID(str(wanted))).first()
        except ValueError:
            return None
    if event.message_id:
        return Delivery.objects.filter(provider_message_id=event.message_id).first()
    return None


def email_tracked(sender, event, esp_name, **kwargs) -> None:
    """anymail's ``tracking`` signal: delivery status and the consent ledger follow the provider's events."""
    if connection.schema_name == "public":
        return  # a tracking view reached without an organization: nothing of ours
    delivery = _delivery_for_email(event)
    if delivery is None:
        logger.info("%s tracking event %s for no known delivery", esp_name, event.event_type)
        return
    kind = event.event_type
    when = event.timestamp
    if kind == "delivered":
        _advance(delivery, DeliveryStatus.DELIVERED, delivered_at=when)
    elif kind == "opened":
        _advance(delivery, DeliveryStatus.DELIVERED, delivered_at=when, opened_at=when)
    elif kind == "clicked":
        _advance(delivery, DeliveryStatus.DELIVERED, delivered_at=when, opened_at=when, clicked_at=when)
    elif kind in ("bounced", "rejected"):
        hard = kind == "bounced" or event.reject_reason in ("bounced", "invalid")
        services.delivery_bounced(
            delivery=delivery, description=event.description or event.mta_response or kind, hard=hard
        )
    elif kind == "complained":
        services.delivery_bounced(
            delivery=delivery, description=event.description or "spam complaint", hard=False, complaint=True
        )
    elif kind == "unsubscribed" and delivery.contact_id is not None:
        services.unsubscribe(
            contact_id=delivery.contact_id,
            channel=delivery.channel,
            campaign_id=delivery.campaign_id,
            source=ConsentSource.PROVIDER,
            proof=f"{esp_name} event {event.event_id or ''}",
        )


# --- Twilio ---

# Twilio's message statuses → ours; "queued"/"accepted"/"sending" say Twilio has it.
_TWILIO_STATUS = {
    "accepted": DeliveryStatus.SENT,
    "queued": DeliveryStatus.SENT,
    "sending": DeliveryStatus.SENT,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.BOUNCED,
    "failed": DeliveryStatus.FAILED,
}
# Error codes of an undelivered message that mean the number is gone.
_DEAD_NUMBER = {30003, 30005, 30006, 21211, 21614, 63024}


def twilio_status(*, delivery_uuid: str, params: dict[str, str]) -> bool:
    """A status callback for the delivery the URL names. False when it names none."""
    try:
        delivery = Delivery.objects.filter(uuid=uuid.UUID(delivery_uuid)).first()
    except ValueError:
        return False
    if delivery is None:
        return False
    status = _TWILIO_STATUS.get((params.get("MessageStatus") or params.get("SmsStatus") or "").lower())
    if status is None:
        return True
    if params.get("MessageSid") and not delivery.provider_message_id:
        Delivery.objects.filter(pk=delivery.pk).update(provider_message_id=params["MessageSid"][:200])
    if status == DeliveryStatus.BOUNCED:
        code = params.get("ErrorCode") or ""
        services.delivery_bounced(
            delivery=delivery,
            description=f"Twilio error {code}".strip(),
            hard=code.isdigit() and int(code) in _DEAD_NUMBER,
        )
    elif status == DeliveryStatus.FAILED and delivery.status in (DeliveryStatus.SENT, DeliveryStatus.SENDING):
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED,
            failed_at=timezone.now(),
            error=f"Twilio: failed {params.get('ErrorCode', '')}",
        )
    elif status == DeliveryStatus.DELIVERED:
        _advance(delivery, status, delivered_at=None)
    else:
        # "sent" for a message we failed as "outcome unknown" (its runner died): it went after all.
        if delivery.status == DeliveryStatus.FAILED and delivery.error.startswith("Outcome unknown"):
            Delivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.SENT, sent_at=delivery.failed_at or timezone.now(), failed_at=None, error=""
            )
        else:
            _advance(delivery, status)
    return True


STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
START_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})


def twilio_inbound(*, params: dict[str, str]) -> str:
    """An inbound message: STOP words opt the sender's contacts out of the channel, START words back in.
    Returns what was done (``opted_out``, ``opted_in``, ``ignored``)."""
    raw_from = params.get("From") or ""
    channel = Channel.WHATSAPP if raw_from.startswith("whatsapp:") else Channel.SMS
    number = channels.normalize_phone(raw_from.removeprefix("whatsapp:"))
    word = (params.get("Body") or "").strip().split(maxsplit=1)[0].upper() if (params.get("Body") or "").strip() else ""
    if not number or (word not in STOP_WORDS and word not in START_WORDS):
        return "ignored"
    contacts = Contact.objects.annotate(
        number=Func(F("phone"), Value(r"[^0-9+]"), Value(""), Value("g"), function="regexp_replace")
    ).filter(number=number)
    proof = f"{word} from {raw_from} (MessageSid {params.get('MessageSid', '')})"
    for contact in contacts:
        if word in STOP_WORDS:
            last = (
                Delivery.objects.filter(contact=contact, channel=channel, sent_at__isnull=False)
                .order_by("-sent_at")
                .values_list("campaign_id", flat=True)
                .first()
            )
            services.unsubscribe(
                contact_id=contact.pk, channel=channel, campaign_id=last, source=ConsentSource.SMS_KEYWORD, proof=proof
            )
        else:
            state = ConsentState.objects.filter(contact=contact, channel=channel).first()
            if state is None or state.status != ConsentStatus.OPTED_IN:
                services.consent_record(
                    contact=contact,
                    channel=channel,
                    status=ConsentStatus.OPTED_IN,
                    source=ConsentSource.SMS_KEYWORD,
                    actor=services.RECIPIENT,
                    proof=proof,
                )
    return "opted_out" if word in STOP_WORDS else "opted_in"
