"""SMS and WhatsApp through the Twilio client against a local Messages API; the providers' callbacks: Twilio's
signed status callbacks and inbound STOP/START, anymail's signed tracking webhooks (bounces → suppression)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from twilio.request_validator import RequestValidator

from crm.campaigns import channels, services
from crm.campaigns.choices import Channel, ConsentSource, ConsentStatus, DeliveryStatus, SegmentKind, SkipReason
from crm.campaigns.models import ConsentState, Delivery, Suppression
from integrations.models import OutboxEvent
from tests.factories import SYSTEM

from .conftest import make_contacts, send_all

pytestmark = pytest.mark.django_db


def _campaign(contacts, channel, **fields):
    segment = services.segment_create(
        actor=SYSTEM, name="List", kind=SegmentKind.STATIC, contacts=[contact.pk for contact in contacts]
    )
    fields = {"subject": "News", "body": "Hi {{ contact.first_name }}, news from {{ organization.name }}.", **fields}
    campaign = services.campaign_create(actor=SYSTEM, name="Texts", channel=channel, segment=segment, **fields)
    return services.campaign_schedule(campaign=campaign, actor=SYSTEM)


def _signed_post(client, tenant, path, params, *, token=None):
    url = f"http://{tenant.slug}.localhost{path}"
    signature = RequestValidator(token or client.twilio_token).compute_signature(url, params)
    return client.post(path, params, HTTP_HOST=f"{tenant.slug}.localhost", HTTP_X_TWILIO_SIGNATURE=signature)


@pytest.fixture
def hooks(tenant, client, twilio):
    client.twilio_token = twilio.auth_token
    return f"/campaigns/hooks/{channels.hooks_token(tenant)}"


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.WHATSAPP])
def test_sms_and_whatsapp_go_through_the_twilio_client_with_a_status_callback(
    tenant, campaign_settings, twilio, channel
):
    contacts = make_contacts(2, channel=channel)
    make_contacts(1, channel=Channel.EMAIL, prefix="emailonly")  # consent on another channel does not count
    campaign = _campaign(contacts, channel)

    send_all(campaign)

    prefix = "whatsapp:" if channel == Channel.WHATSAPP else ""
    assert sorted(m["To"] for m in twilio.messages) == sorted(f"{prefix}{c.phone}" for c in contacts)
    message = twilio.messages[0]
    assert message["From"] == prefix + (settings_from := {"sms": "+15550001111", "whatsapp": "+15550002222"}[channel])
    assert settings_from
    assert message["Body"].startswith("Hi R")
    assert message["StatusCallback"].startswith(f"http://{tenant.slug}.localhost/campaigns/hooks/")
    delivery = Delivery.objects.get(provider_message_id=message["sid"])
    assert delivery.status == DeliveryStatus.SENT


def test_a_signed_status_callback_moves_the_delivery_and_a_forged_one_changes_nothing(
    tenant, campaign_settings, twilio, client, hooks
):
    (contact,) = make_contacts(1, channel=Channel.SMS)
    send_all(_campaign([contact], Channel.SMS))
    callback = twilio.messages[0]["StatusCallback"].removeprefix(f"http://{tenant.slug}.localhost")
    params = {"MessageSid": twilio.messages[0]["sid"], "MessageStatus": "delivered", "AccountSid": twilio.account_sid}

    forged = _signed_post(client, tenant, callback, params, token="not-the-token")
    unsigned = client.post(callback, params, HTTP_HOST=f"{tenant.slug}.localhost")

    assert forged.status_code == unsigned.status_code == 403
    assert forged.json()["code"] == "invalid_signature"
    assert Delivery.objects.get(contact=contact).status == DeliveryStatus.SENT

    assert _signed_post(client, tenant, callback, params).status_code == 204
    delivery = Delivery.objects.get(contact=contact)
    assert (delivery.status, delivery.delivered_at is not None) == (DeliveryStatus.DELIVERED, True)


def test_a_hooks_url_without_the_organizations_token_is_404(tenant, campaign_settings, client, org_b):
    params = {"From": "+15550100000", "Body": "STOP"}
    wrong = _signed_post(client, tenant, "/campaigns/hooks/not-a-token/twilio/inbound/", params, token="x")
    assert wrong.status_code == 404


def test_stop_by_sms_opts_the_contact_out_and_start_back_in(tenant, campaign_settings, twilio, client, hooks):
    stopper, other = make_contacts(2, channel=Channel.SMS)
    inbound = f"{hooks}/twilio/inbound/"

    response = _signed_post(
        client, tenant, inbound, {"From": stopper.phone, "Body": " stop please", "MessageSid": "SMx"}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    state = ConsentState.objects.get(contact=stopper, channel=Channel.SMS)
    assert (state.status, state.source) == (ConsentStatus.OPTED_OUT, ConsentSource.SMS_KEYWORD)
    assert OutboxEvent.objects.filter(type="contact.unsubscribed", subject_id=str(stopper.pk)).exists()

    campaign = _campaign([stopper, other], Channel.SMS)
    send_all(campaign)
    assert [m["To"] for m in twilio.messages] == [other.phone]
    skipped = Delivery.objects.get(campaign=campaign, contact=stopper)
    assert (skipped.status, skipped.skip_reason) == (DeliveryStatus.SKIPPED, SkipReason.NO_CONSENT)

    _signed_post(client, tenant, inbound, {"From": stopper.phone, "Body": "START"})
    assert ConsentState.objects.get(contact=stopper, channel=Channel.SMS).status == ConsentStatus.OPTED_IN


def test_a_forged_inbound_stop_changes_nothing(tenant, campaign_settings, client, hooks):
    (contact,) = make_contacts(1, channel=Channel.SMS)
    response = _signed_post(
        client, tenant, f"{hooks}/twilio/inbound/", {"From": contact.phone, "Body": "STOP"}, token="forged"
    )
    assert response.status_code == 403
    assert ConsentState.objects.get(contact=contact, channel=Channel.SMS).status == ConsentStatus.OPTED_IN


def test_twilio_down_leaves_messages_queued_for_retry_and_an_invalid_number_fails(tenant, campaign_settings, twilio):
    contacts = make_contacts(2, channel=Channel.SMS)
    campaign = _campaign(contacts, Channel.SMS)
    twilio.fail_with = 503

    assert send_all(campaign).state == "wait"
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {DeliveryStatus.QUEUED}

    twilio.fail_with = None
    from crm.campaigns import sending

    assert sending.run(campaign_id=campaign.pk, slice_seconds=30).state == "done"
    assert len(twilio.messages) == 2  # each once


def _mailgun(key: str, event: dict) -> str:
    timestamp, token = str(int(time.time())), "a" * 50
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event}
    )


def test_a_signed_bounce_webhook_bounces_the_delivery_and_suppresses_the_address(
    tenant, campaign_settings, smtp, client, hooks
):
    campaign_settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key"}
    bounced, fine = make_contacts(2)
    segment_campaign = _campaign([bounced, fine], Channel.EMAIL)
    send_all(segment_campaign)
    delivery = Delivery.objects.get(contact=bounced)
    event = {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "recipient": bounced.email,
        "timestamp": time.time(),
        "message": {"headers": {"message-id": delivery.provider_message_id.strip("<>")}},
        "user-variables": {"delivery": str(delivery.uuid)},
        "delivery-status": {"description": "No such mailbox", "message": "550 5.1.1 unknown user"},
    }
    url = f"{hooks}/email/mailgun/tracking/"
    host = {"HTTP_HOST": f"{tenant.slug}.localhost"}

    forged = client.post(url, _mailgun("wrong-key", event), content_type="application/json", **host)
    assert forged.status_code == 400
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENT

    response = client.post(url, _mailgun("mailgun-signing-key", event), content_type="application/json", **host)

    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.BOUNCED
    assert Suppression.objects.filter(channel=Channel.EMAIL, address=bounced.email, reason="hard_bounce").exists()
    assert OutboxEvent.objects.filter(type="delivery.bounced", subject_id=str(delivery.pk)).exists()

    opened = {
        **event,
        "event": "opened",
        "recipient": fine.email,
        "user-variables": {"delivery": str(Delivery.objects.get(contact=fine).uuid)},
    }
    client.post(url, _mailgun("mailgun-signing-key", opened), content_type="application/json", **host)
    assert Delivery.objects.get(contact=fine).opened_at is not None

    smtp.accepted.clear()
    send_all(_campaign([bounced, fine], Channel.EMAIL, subject="Again"))
    assert smtp.recipients() == [fine.email]  # the suppressed address is skipped


def test_an_unconfigured_provider_is_a_clear_answer_not_a_crash(tenant, campaign_settings, client, hooks):
    campaign_settings.ANYMAIL = {}
    response = client.post(
        f"{hooks}/email/mailgun/tracking/", "{}", content_type="application/json", HTTP_HOST=f"{tenant.slug}.localhost"
    )
    assert response.status_code == 404
    assert response.json()["code"] == "channel_not_configured"
