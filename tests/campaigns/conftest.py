from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from crm import services as crm
from crm.campaigns import sending, services
from crm.campaigns.choices import Channel, ConsentSource, ConsentStatus
from tests.factories import SYSTEM

from ..integrations.worker import celery_worker  # noqa: F401 - a fixture for real-worker tests
from .servers import SmtpServer, TwilioServer


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def twilio():
    server = TwilioServer().start()
    yield server
    server.stop()


@pytest.fixture
def campaign_settings(settings, smtp, twilio):
    """Campaign e-mail to the local SMTP server, SMS and WhatsApp to the local Twilio server."""
    settings.CAMPAIGN_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", smtp.port, 5
    settings.EMAIL_USE_TLS = False
    settings.CAMPAIGN_FROM_EMAIL = "Campaigns <campaigns@crm.test>"
    settings.CAMPAIGN_PUBLIC_URL = "http://{slug}.localhost"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = twilio.account_sid, twilio.auth_token
    settings.TWILIO_API_BASE_URL = twilio.url
    settings.TWILIO_SMS_FROM, settings.TWILIO_WHATSAPP_FROM = "+15550001111", "+15550002222"
    settings.TWILIO_TIMEOUT_SECONDS = 5
    settings.CAMPAIGN_RETRY_FIRST_DELAY_SECONDS = 0
    settings.CAMPAIGN_TWILIO_PER_SECOND = 0
    return settings


def make_contacts(n: int, *, opted_in=True, channel=Channel.EMAIL, prefix="r", owner=None, **fields):
    """``n`` contacts (in the current schema), each opted in on ``channel`` unless told otherwise."""
    made = []
    for index in range(n):
        contact = crm.contact_create(
            actor=SYSTEM,
            first_name=f"{prefix.title()}{index}",
            last_name="Test",
            email=f"{prefix}{index}@example.test",
            phone=f"+1555010{index:04d}",
            owner_id=owner,
            **fields,
        )
        if opted_in:
            services.consent_record(
                contact=contact,
                channel=channel,
                status=ConsentStatus.OPTED_IN,
                source=ConsentSource.FORM,
                actor=SYSTEM,
                proof="test",
            )
        made.append(contact)
    return made


def send_all(campaign, *, seconds: float = 30):
    """Start the campaign (its scheduled time has come) and run a runner until nothing is due."""
    services.campaign_start(campaign_id=campaign.pk)
    return sending.run(campaign_id=campaign.pk, slice_seconds=seconds)


@pytest.fixture
def tenant(org_a):
    with tenant_context(org_a):
        yield org_a
