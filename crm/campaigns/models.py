"""Campaign records, in the organization's schema. Users are referred to by id (they live in ``public``)."""

import uuid

from django.db import models
from django.db.models import Q

from crm.models import Contact

from .choices import (
    CampaignStatus,
    Channel,
    ConsentSource,
    ConsentStatus,
    DeliveryStatus,
    SegmentKind,
    SkipReason,
    SuppressionReason,
)


class Segment(models.Model):
    """Who a campaign goes to: a static list of contacts, or the contacts list's filters saved (``filters``:
    query parameters, each a list of values), evaluated when the campaign starts."""

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SegmentKind.choices)
    filters = models.JSONField(default=dict, blank=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name


class SegmentMember(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="members")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "contact"], name="segment_member_unique")]

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.contact_id}"


class ConsentEvent(models.Model):
    """The ledger: every opt-in and opt-out of a contact on a channel, with where it came from and its proof.
    Append-only; :class:`ConsentState` holds the latest entry per contact and channel."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    proof = models.TextField(blank=True, help_text="What shows the consent: form, IP address, message, ...")
    campaign_id = models.BigIntegerField(null=True, blank=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        indexes = [models.Index(fields=["contact", "channel", "-occurred_at"], name="consent_event_contact_idx")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.channel} {self.status}"


class ConsentState(models.Model):
    """The current consent of a contact on a channel: the latest :class:`ConsentEvent`."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "channel"], name="consent_state_unique")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.channel} {self.status}"


class Suppression(models.Model):
    """An address no message goes to on a channel (hard bounce, complaint), whichever contact holds it."""

    channel = models.CharField(max_length=16, choices=Channel.choices)
    address = models.CharField(max_length=254, help_text="E-mail lower-cased, or phone number in E.164.")
    reason = models.CharField(max_length=32, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=500, blank=True)
    delivery_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="suppression_unique")]

    def __str__(self) -> str:
        return f"{self.channel} {self.address}"


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="campaigns")
    subject = models.CharField(max_length=300, blank=True, help_text="E-mail only; a template.")
    body = models.TextField(help_text="A template: {{ contact.first_name }} and the other declared variables.")
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # Optional send window in ``time_zone``: weekdays (0 = Monday) and hours [start, end).
    window_days = models.JSONField(default=list, blank=True)
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, blank=True)
    # The reach the audience is evaluated with when sending: the scheduler's scope on contacts, stored.
    audience_scope = models.CharField(max_length=8, blank=True)
    audience_user_id = models.BigIntegerField(null=True, blank=True)
    scheduled_by_id = models.BigIntegerField(null=True, blank=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    paused_reason = models.CharField(max_length=64, blank=True)
    recipients = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "scheduled_at"], name="campaign_due_idx")]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One message of a campaign to one contact on the campaign's channel.

    ``uuid`` is the message's idempotent identity (the e-mail's Message-ID, the callbacks' reference); the
    claim (``claim_token``) says which runner holds it (docs/decisions/0012-campaigns.md)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="deliveries")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    address = models.CharField(max_length=254, blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    skip_reason = models.CharField(max_length=32, choices=SkipReason.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # SMS/WhatsApp: set (committed) just before the provider's request, so a dead runner's message is known to
    # have possibly gone (never sent twice).
    in_flight_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="delivery_recipient_unique")]
        indexes = [
            models.Index(fields=["campaign", "status", "id"], name="delivery_campaign_status_idx"),
            models.Index(fields=["claim_token"], condition=Q(claim_token__isnull=False), name="delivery_claim_idx"),
            models.Index(fields=["provider_message_id"], name="delivery_provider_id_idx"),
            models.Index(fields=["contact", "sent_at"], name="delivery_contact_idx"),
            models.Index(fields=["sent_at"], condition=Q(sent_at__isnull=False), name="delivery_sent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id} {self.status}"
