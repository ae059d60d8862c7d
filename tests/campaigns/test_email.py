"""E-mail campaigns end to end against a real SMTP server on loopback: consent checked when each message is
claimed, RFC 8058 headers, one-click unsubscribe, retries through an outage, nothing sent twice."""

from __future__ import annotations

import pytest

from crm.campaigns import channels, sending, services
from crm.campaigns.choices import (
    CampaignStatus,
    Channel,
    ConsentSource,
    ConsentStatus,
    DeliveryStatus,
    SegmentKind,
    SkipReason,
)
from crm.campaigns.models import ConsentEvent, ConsentState, Delivery
from integrations.models import OutboxEvent
from tests.factories import SYSTEM

from .conftest import make_contacts, send_all
from .servers import SmtpServer

pytestmark = pytest.mark.django_db


def _campaign(contacts, **fields):
    segment = services.segment_create(
        actor=SYSTEM, name="List", kind=SegmentKind.STATIC, contacts=[contact.pk for contact in contacts]
    )
    fields = {"subject": "Hello {{ contact.first_name }}", "body": "Dear {{ contact.full_name }}, news.", **fields}
    campaign = services.campaign_create(actor=SYSTEM, name="News", channel=Channel.EMAIL, segment=segment, **fields)
    return services.campaign_schedule(campaign=campaign, actor=SYSTEM)


def test_every_consenting_recipient_gets_one_rendered_message_with_one_click_headers(tenant, campaign_settings, smtp):
    consenting = make_contacts(3)
    silent = make_contacts(1, opted_in=False, prefix="silent")
    campaign = _campaign([*consenting, *silent])

    outcome = send_all(campaign)

    assert outcome.state == "done"
    assert sorted(smtp.recipients()) == sorted(contact.email for contact in consenting)
    message = next(m.message for m in smtp.accepted if m.recipients == [consenting[0].email])
    assert message["Subject"] == "Hello R0"
    assert "Dear R0 Test, news." in message.get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip().strip("<>")
    assert link.startswith(f"http://{tenant.slug}.localhost/campaigns/unsubscribe/")
    assert link in message.get_content()  # the body has the link too
    delivery = Delivery.objects.get(contact=consenting[0])
    assert message["Message-ID"] == channels.message_id(str(delivery.uuid)) == delivery.provider_message_id
    assert delivery.status == DeliveryStatus.SENT
    skipped = Delivery.objects.get(contact=silent[0])
    assert (skipped.status, skipped.skip_reason) == (DeliveryStatus.SKIPPED, SkipReason.NO_CONSENT)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    assert list(
        OutboxEvent.objects.filter(subject_id=str(campaign.pk), subject_type="campaign")
        .values_list("type", flat=True)
        .order_by("occurred_at")
    ) == ["campaign.scheduled", "campaign.started", "campaign.completed"]


def test_an_opt_out_between_scheduling_and_sending_is_skipped_no_consent(tenant, campaign_settings, smtp):
    keeps, leaves = make_contacts(2)
    campaign = _campaign([keeps, leaves])
    services.consent_record(
        contact=leaves, channel=Channel.EMAIL, status=ConsentStatus.OPTED_OUT, source=ConsentSource.API, actor=SYSTEM
    )

    send_all(campaign)

    assert smtp.recipients() == [keeps.email]
    delivery = Delivery.objects.get(contact=leaves)
    assert (delivery.status, delivery.skip_reason) == (DeliveryStatus.SKIPPED, SkipReason.NO_CONSENT)


def test_suppressed_and_do_not_contact_recipients_are_skipped(tenant, campaign_settings, smtp):
    ok, bounced, blocked = make_contacts(3)
    blocked.do_not_contact = True
    blocked.save(update_fields=["do_not_contact"])
    services.suppression_add(channel=Channel.EMAIL, address=bounced.email.upper(), reason="hard_bounce")
    campaign = _campaign([ok, bounced, blocked])

    send_all(campaign)

    assert smtp.recipients() == [ok.email]
    reasons = dict(Delivery.objects.filter(campaign=campaign).values_list("contact_id", "skip_reason"))
    assert reasons == {ok.pk: "", bounced.pk: SkipReason.SUPPRESSED, blocked.pk: SkipReason.DO_NOT_CONTACT}


def test_one_click_unsubscribe_by_post_needs_no_login_and_applies_at_once(tenant, campaign_settings, smtp, client):
    contact, other = make_contacts(2)
    send_all(_campaign([contact, other]))
    message = next(m.message for m in smtp.accepted if m.recipients == [contact.email])
    path = message["List-Unsubscribe"].strip().strip("<>").removeprefix(f"http://{tenant.slug}.localhost")
    host = {"HTTP_HOST": f"{tenant.slug}.localhost"}

    page = client.get(path, **host)  # a link scanner's GET changes nothing
    assert page.status_code == 200
    assert b"<form" in page.content
    assert not ConsentEvent.objects.filter(contact=contact, status=ConsentStatus.OPTED_OUT).exists()

    response = client.post(path, {"List-Unsubscribe": "One-Click"}, **host)

    assert response.status_code == 200
    state = ConsentState.objects.get(contact=contact, channel=Channel.EMAIL)
    assert (state.status, state.source) == (ConsentStatus.OPTED_OUT, ConsentSource.ONE_CLICK)
    assert Delivery.objects.get(contact=contact).unsubscribed_at is not None
    assert OutboxEvent.objects.filter(type="contact.unsubscribed", subject_id=str(contact.pk)).count() == 1
    assert client.post(path, {"List-Unsubscribe": "One-Click"}, **host).status_code == 200  # twice: recorded once
    assert OutboxEvent.objects.filter(type="contact.unsubscribed", subject_id=str(contact.pk)).count() == 1

    second = _campaign([contact, other], subject="Again")  # the next campaign skips them
    smtp.accepted.clear()
    send_all(second)
    assert smtp.recipients() == [other.email]


def test_a_forged_or_foreign_unsubscribe_link_changes_nothing(tenant, org_b, campaign_settings, client, in_tenant):
    (contact,) = make_contacts(1)
    token = channels.unsubscribe_token(
        organization_id=tenant.pk, contact_id=contact.pk, channel=Channel.EMAIL, campaign_id=None
    )
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert client.post(f"/campaigns/unsubscribe/{forged}/", HTTP_HOST=f"{tenant.slug}.localhost").status_code == 404
    other_host = client.post(f"/campaigns/unsubscribe/{token}/", HTTP_HOST=f"{org_b.slug}.localhost")
    assert other_host.status_code == 404
    with in_tenant(tenant):
        assert ConsentState.objects.get(contact=contact).status == ConsentStatus.OPTED_IN


def test_a_provider_outage_leaves_messages_queued_and_retried_never_lost_never_twice(tenant, campaign_settings, smtp):
    contacts = make_contacts(4)
    campaign = _campaign(contacts)
    smtp.stop()  # the mail server is down

    outcome = send_all(campaign)

    assert outcome.state == "wait"
    assert not smtp.accepted
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {DeliveryStatus.QUEUED}
    first = Delivery.objects.filter(campaign=campaign).order_by("pk").first()
    assert first.attempts == 1
    assert first.error

    back = SmtpServer(port=smtp.port).start()  # the server is back
    try:
        outcome = sending.run(campaign_id=campaign.pk, slice_seconds=30)
        assert outcome.state == "done"
    finally:
        back.stop()

    assert sorted(back.recipients()) == sorted(contact.email for contact in contacts)
    assert len({m.message_id for m in back.accepted}) == 4
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED


def test_a_refused_address_fails_without_stopping_the_others(tenant, campaign_settings, smtp):
    good, refused, later = make_contacts(3)
    smtp.refuse[refused.email] = "550 No such user"
    campaign = _campaign([good, refused, later])

    send_all(campaign)

    assert sorted(smtp.recipients()) == sorted([good.email, later.email])
    failed = Delivery.objects.get(contact=refused)
    assert failed.status == DeliveryStatus.FAILED
    assert "550" in failed.error


def test_a_dead_runners_claim_is_recovered_and_sent_once(tenant, campaign_settings, smtp):
    """Rows claimed by a runner whose lock is gone go back to the queue: sent once, with the same Message-ID."""
    contacts = make_contacts(3)
    campaign = _campaign(contacts)
    services.campaign_start(campaign_id=campaign.pk)
    with sending.claim_lock() as token:
        claimed = sending._claim(campaign, token, 2)
        assert len(claimed) == 2
    # the lock is released: as if the runner's connection had died
    assert sending.recover_stale(campaign_id=campaign.pk) == 2

    sending.run(campaign_id=campaign.pk, slice_seconds=30)

    assert sorted(smtp.recipients()) == sorted(contact.email for contact in contacts)


def test_the_campaign_appears_on_each_recipients_timeline(tenant, campaign_settings, smtp, as_owner_a):
    (contact,) = make_contacts(1)
    campaign = _campaign([contact])
    send_all(campaign)

    response = as_owner_a.get(f"/api/v1/contacts/{contact.pk}/timeline/")

    assert response.status_code == 200
    messages = [item for item in response.json()["results"] if item["type"] == "message"]
    assert [item["data"]["campaign"] for item in messages] == [{"id": campaign.pk, "name": "News"}]
    assert messages[0]["data"]["status"] == "sent"
