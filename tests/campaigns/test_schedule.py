"""Scheduling: a time without an offset is in the organization's zone, the beat tick starts due campaigns, the
send window holds messages until it opens, the plan's hourly allowance slows sending down."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from billing.models import Override
from config.decision_cache import invalidate_decisions
from crm.campaigns import sending, services
from crm.campaigns.choices import CampaignStatus, Channel, DeliveryStatus, SegmentKind
from crm.campaigns.models import Campaign, Delivery
from crm.campaigns.selectors import organization_time_zone
from tests.factories import SYSTEM

from .conftest import make_contacts

pytestmark = pytest.mark.django_db


def _campaign(contacts):
    segment = services.segment_create(
        actor=SYSTEM, name="L", kind=SegmentKind.STATIC, contacts=[c.pk for c in contacts]
    )
    return services.campaign_create(
        actor=SYSTEM, name="C", channel=Channel.EMAIL, segment=segment, subject="Hi", body="Hello"
    )


def test_the_organizations_time_zone_is_the_deployments_until_organizations_have_one(tenant, settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert organization_time_zone(tenant) == zoneinfo.ZoneInfo("Europe/Paris")
    tenant.time_zone = "America/New_York"
    assert organization_time_zone(tenant) == zoneinfo.ZoneInfo("America/New_York")
    del tenant.time_zone


def test_a_time_without_offset_is_in_the_organizations_zone_and_the_tick_starts_it_when_due(tenant, campaign_settings):
    campaign_settings.TIME_ZONE = "Europe/Paris"
    campaign = _campaign(make_contacts(2))
    services.campaign_schedule(campaign=campaign, actor=SYSTEM, scheduled_at=datetime.datetime(2030, 1, 15, 9, 0))  # noqa: DTZ001 - local time, by design
    campaign.refresh_from_db()
    assert campaign.scheduled_at == datetime.datetime(2030, 1, 15, 8, 0, tzinfo=datetime.UTC)
    assert campaign.time_zone == "Europe/Paris"

    assert sending.tick(now=datetime.datetime(2030, 1, 15, 7, 59, tzinfo=datetime.UTC))["started"] == 0
    result = sending.tick(now=datetime.datetime(2030, 1, 15, 8, 0, tzinfo=datetime.UTC))
    assert result["started"] == 1
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    assert Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).count() == 2


def test_the_send_window_is_in_the_campaigns_zone():
    campaign = Campaign(
        window_days=[0, 1, 2, 3, 4],
        window_start=datetime.time(9),
        window_end=datetime.time(17),
        time_zone="Europe/Paris",
    )
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    inside = datetime.datetime(2030, 1, 16, 10, 0, tzinfo=paris)  # a Wednesday
    evening = datetime.datetime(2030, 1, 16, 18, 0, tzinfo=paris)
    friday_night = datetime.datetime(2030, 1, 18, 20, 0, tzinfo=paris)
    assert sending.window_wait(campaign, inside) == 0
    assert sending.window_wait(campaign, evening) == 15 * 3600  # Thursday 9:00
    assert sending.window_wait(campaign, friday_night) == (2 * 24 + 13) * 3600  # Monday 9:00


def test_outside_the_window_nothing_is_sent(tenant, campaign_settings, smtp):
    campaign = _campaign(make_contacts(2))
    now = datetime.datetime.now(tz=datetime.UTC)
    closed_day = (now.weekday() + 3) % 7
    services.campaign_schedule(campaign=campaign, actor=SYSTEM, window_days=[closed_day])
    services.campaign_start(campaign_id=campaign.pk)
    outcome = sending.run(campaign_id=campaign.pk, slice_seconds=10)
    assert outcome.state == "wait"
    assert outcome.again_in > 3600
    assert not smtp.accepted


def test_past_the_hours_allowance_sending_waits_for_the_next_hour(tenant, org_a, campaign_settings, smtp):
    Override.objects.create(organization=org_a, limit="campaign_messages_per_hour", limit_value=1)
    invalidate_decisions(organization_id=org_a.pk)
    campaign = _campaign(make_contacts(3))
    services.campaign_schedule(campaign=campaign, actor=SYSTEM)
    services.campaign_start(campaign_id=campaign.pk)

    outcome = sending.run(campaign_id=campaign.pk, slice_seconds=10)

    assert outcome.state == "wait"
    assert 0 < outcome.again_in <= 3601
    assert len(smtp.accepted) == 1
    assert Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).count() == 2


def test_when_the_months_allowance_runs_out_the_campaign_pauses(tenant, org_a, campaign_settings, smtp):
    campaign = _campaign(make_contacts(3))
    services.campaign_schedule(campaign=campaign, actor=SYSTEM)
    Override.objects.create(organization=org_a, limit="campaign_messages_per_month", limit_value=2)
    invalidate_decisions(organization_id=org_a.pk)
    services.campaign_start(campaign_id=campaign.pk)

    assert sending.run(campaign_id=campaign.pk, slice_seconds=10).state == "stopped"

    assert len(smtp.accepted) == 2
    campaign.refresh_from_db()
    assert (campaign.status, campaign.paused_reason) == (CampaignStatus.PAUSED, "plan_limit_reached")
