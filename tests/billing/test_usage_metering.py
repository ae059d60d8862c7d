"""Usage alerts at 80 % and 100 % of a limit (owners e-mailed, ``usage.threshold_reached`` in the outbox, once per
limit, threshold and month) and metered usage: counted by ``billing.metering.usage_record`` (campaign sending calls
it), reported to the payment provider where the plan prices the meter, each range once."""

from __future__ import annotations

import pytest
from django.core import mail
from django_tenants.utils import tenant_context

from billing.alerts import crossed
from billing.choices import Meter
from billing.metering import usage_record, usage_report, used_this_period
from billing.models import MeteredUsage, Override, Plan, PlanMeter, UsageAlert
from billing.services import subscription_change_plan
from config.decision_cache import invalidate_decisions
from integrations.events import EVENTS, payload_schema
from integrations.models import OutboxEvent

from ..campaigns.conftest import campaign_settings, make_contacts, smtp, twilio  # noqa: F401 - fixtures
from ..factories import SYSTEM

pytestmark = pytest.mark.django_db


def _limit(org, name: str, value: int) -> None:
    Override.objects.create(organization=org, limit=name, limit_value=value)
    invalidate_decisions(organization_id=org.pk)


@pytest.mark.parametrize(
    ("value", "before", "after", "expected"),
    [(10, 7, 8, [80]), (10, 8, 9, []), (10, 9, 10, [100]), (10, 0, 10, [80, 100]), (0, 0, 5, []), (5, 3, 3, [])],
)
def test_thresholds_crossed(value, before, after, expected):
    assert crossed(value=value, before=before, after=after) == expected


def test_the_event_is_in_the_catalogue_with_a_schema():
    assert "usage.threshold_reached" in EVENTS
    schema = payload_schema("usage.threshold_reached")
    assert set(schema["required"]) == {"limit", "threshold", "used", "value", "period_start"}


def test_metered_usage_alerts_once_per_threshold_and_month(org_a, owner_a, django_capture_on_commit_callbacks):
    _limit(org_a, "copilot_messages_per_month", 10)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=7) == 7
    assert not UsageAlert.objects.filter(organization=org_a).exists()
    with django_capture_on_commit_callbacks(execute=True):
        usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=1)  # 8 of 10
    [alert] = UsageAlert.objects.filter(organization=org_a)
    assert (alert.limit, alert.threshold, alert.used, alert.value) == ("copilot_messages_per_month", 80, 8, 10)
    [message] = mail.outbox
    assert message.to == [owner_a.email]
    assert "80 %" in message.subject
    with django_capture_on_commit_callbacks(execute=True):
        usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=2)  # 10 of 10
        usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=5)  # past it: told already
    assert sorted(UsageAlert.objects.filter(organization=org_a).values_list("threshold", flat=True)) == [80, 100]
    assert len(mail.outbox) == 2
    # the outbox event, recorded in the organization's schema by a task (the usage came from public)
    with tenant_context(org_a):
        events = list(OutboxEvent.objects.filter(type="usage.threshold_reached").order_by("pk"))
    assert sorted((e.payload["threshold"], e.payload["used"]) for e in events) == [(80, 8), (100, 10)]
    assert used_this_period(organization=org_a, meter=Meter.COPILOT_MESSAGES) == 15


def test_stored_records_alert_inside_the_creating_transaction(as_owner_a, org_a, in_tenant):
    _limit(org_a, "contacts", 5)
    for index in range(4):
        response = as_owner_a.post("/api/v1/contacts/", {"first_name": f"C{index}"}, format="json")
        assert response.status_code == 201, response.content
    [alert] = UsageAlert.objects.filter(organization=org_a, limit="contacts")
    assert (alert.threshold, alert.used) == (80, 4)
    with in_tenant(org_a):
        [event] = OutboxEvent.objects.filter(type="usage.threshold_reached")
    assert event.payload == {
        "limit": "contacts",
        "threshold": 80,
        "used": 4,
        "value": 5,
        "period_start": alert.period_start.isoformat(),
    }
    as_owner_a.post("/api/v1/contacts/", {"first_name": "C5"}, format="json")
    over = as_owner_a.post("/api/v1/contacts/", {"first_name": "C6"}, format="json")
    assert over.json()["code"] == "plan_limit_reached"
    assert sorted(UsageAlert.objects.filter(organization=org_a).values_list("threshold", flat=True)) == [80, 100]


def test_the_copilot_meter_is_the_counter_of_its_limit(as_owner_a, org_a):
    usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=3)
    rows = {row["limit"]: row for row in as_owner_a.get("/api/v1/billing/usage/?page_size=100").json()["results"]}
    assert rows["copilot_messages_per_month"]["used"] == 3


def test_consumption_does_not_block_a_downgrade(org_a):
    usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=50)  # Free allows 0 a month
    assert subscription_change_plan(organization=org_a, plan_code="free", actor=None).plan.code == "free"


def test_campaign_sending_is_metered(org_a, campaign_settings, smtp):  # noqa: F811
    from crm.campaigns import sending, services
    from crm.campaigns.choices import Channel, SegmentKind

    with tenant_context(org_a):
        contacts = make_contacts(3)
        segment = services.segment_create(
            actor=SYSTEM, name="L", kind=SegmentKind.STATIC, contacts=[c.pk for c in contacts]
        )
        campaign = services.campaign_create(
            actor=SYSTEM, name="C", channel=Channel.EMAIL, segment=segment, subject="Hi", body="Hello"
        )
        services.campaign_schedule(campaign=campaign, actor=SYSTEM)
        services.campaign_start(campaign_id=campaign.pk)
        sending.run(campaign_id=campaign.pk, slice_seconds=10)
    assert len(smtp.accepted) == 3
    assert used_this_period(organization=org_a, meter=Meter.CAMPAIGN_MESSAGES) == 3


def test_metered_usage_is_reported_to_the_provider_once(org_a, paying, provider):
    PlanMeter.objects.create(
        plan=Plan.objects.get(code="pro"),
        meter=Meter.COPILOT_MESSAGES,
        provider_price="price_copilot_metered",
        provider_event_name="copilot_messages",
    )
    usage_record(organization=org_a, meter=Meter.CAMPAIGN_MESSAGES, quantity=4)  # Pro does not price it
    usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=5)
    assert usage_report() == 1
    [(identifier, reported)] = provider.meter_events.items()
    assert reported == {"event_name": "copilot_messages", "customer": paying["customer"], "value": 5}
    assert usage_report() == 0  # nothing new
    assert set(MeteredUsage.objects.filter(organization=org_a).values_list("meter", "reported")) == {
        ("campaign_messages", 4),
        ("copilot_messages", 5),
    }

    # a report that fails is sent again with the same range and identifier
    usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=3)
    provider.fail_next = 1
    assert usage_report() == 0
    from config import breaker

    breaker.reset_all()
    usage_record(organization=org_a, meter=Meter.COPILOT_MESSAGES, quantity=2)  # more meanwhile: reported next
    assert usage_report() == 1
    assert usage_report() == 1
    values = sorted(event["value"] for event in provider.meter_events.values())
    assert values == [2, 3, 5]
    assert MeteredUsage.objects.get(organization=org_a, meter="copilot_messages").reported == 10
