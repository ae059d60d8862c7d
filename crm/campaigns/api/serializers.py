"""Input and output of the campaigns API. Contact ids in bodies resolve within the caller's reach: another's is
"does not exist" (400), never their contact."""

from __future__ import annotations

import datetime

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.fields import MAX_UTC_OFFSET
from config.api.outputs import ModelOutput
from config.api.references import PersonIdReference, RecordReference
from crm.models import Contact

from .. import selectors
from ..choices import (
    RECORDED_SOURCES,
    STATS_INTERVALS,
    CampaignStatus,
    Channel,
    ConsentSource,
    ConsentStatus,
    DeliveryStatus,
    SegmentKind,
    SkipReason,
    SuppressionReason,
)
from ..models import Campaign, ConsentEvent, ConsentState, Delivery, Segment, Suppression
from ..templates import FILTERS, VARIABLES

MAX_IDS = 500


@extend_schema_field(OpenApiTypes.INT)
class ReachableContactField(serializers.PrimaryKeyRelatedField):
    """A contact the caller may see."""

    def get_queryset(self):
        return selectors.contacts_within(self.context["request"].access)


@extend_schema_field({"type": "string", "format": "date-time"})
class InstantInput(serializers.Field):
    """An ISO 8601 date-time; one without an offset stays naive: the service reads it in the organization's time
    zone. Offsets beyond ±14:00 are refused."""

    default_error_messages = {"invalid": "Enter an ISO 8601 date-time, e.g. 2026-01-31T09:30:00 or ...T09:30:00+01:00."}

    def to_internal_value(self, value):
        if not isinstance(value, str) or len(value) > 64:
            self.fail("invalid")
        try:
            parsed = parse_datetime(value.strip())
        except (ValueError, OverflowError):
            parsed = None
        if parsed is None:
            self.fail("invalid")
        offset = parsed.utcoffset()
        if offset is not None:
            if abs(offset) > MAX_UTC_OFFSET:
                self.fail("invalid")
            try:
                parsed = parsed.astimezone(datetime.UTC)
            except OverflowError:
                self.fail("invalid")
        return parsed

    def to_representation(self, value):
        return value.isoformat()


# --- segments ---


def _filters_value(value):
    """``{name: value or [values]}`` → ``{name: [str, ...]}``."""
    if not isinstance(value, dict):
        raise serializers.ValidationError('An object of contact list filters, e.g. {"status": ["active"]}.')
    if len(value) > 50:
        raise serializers.ValidationError("At most 50 filters.")
    cleaned = {}
    for name, values in value.items():
        values = values if isinstance(values, list) else [values]
        if len(values) > 50 or not all(isinstance(item, str | int | float | bool) for item in values):
            raise serializers.ValidationError(f"{name}: a value or a list of at most 50 plain values.")
        cleaned[str(name)] = [str(item).lower() if isinstance(item, bool) else str(item) for item in values]
    return cleaned


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "description": "The contacts list's query parameters (`status`, `owner`, `tags`, `cf_<key>`, ...), each a "
        "list of values.",
        "example": {"status": ["active"], "has_email": ["true"]},
    }
)
class FiltersField(serializers.JSONField):
    def to_internal_value(self, data):
        return _filters_value(super().to_internal_value(data))


class SegmentInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=SegmentKind.choices)
    filters = FiltersField(required=False)
    contacts = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**62), required=False, max_length=MAX_IDS
    )


class SegmentUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    filters = FiltersField(required=False)


class SegmentOutput(ModelOutput):
    static_count = serializers.IntegerField(read_only=True, allow_null=True, default=None)
    created_by = PersonIdReference(source="created_by_id", allow_null=True)

    class Meta:
        model = Segment
        fields = ["id", "name", "kind", "filters", "static_count", "created_by", "created_at", "updated_at"]


class ContactIdsInput(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**62), min_length=1, max_length=MAX_IDS
    )


class CountOutput(serializers.Serializer):
    count = serializers.IntegerField()


class AudienceContactOutput(ModelOutput):
    class Meta:
        model = Contact
        fields = ["id", "first_name", "last_name", "email", "phone", "owner_id", "do_not_contact"]


# --- campaigns ---


# A send window's times are wall-clock times in the recipient's zone: no offset, no fractions of a second.
LOCAL_TIME_FORMATS = ["%H:%M", "%H:%M:%S"]
LOCAL_TIME_SCHEMA = {"type": "string", "pattern": r"^\d{2}:\d{2}:\d{2}$", "nullable": True, "example": "09:00:00"}


class SendWindowInput(serializers.Serializer):
    days = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        max_length=7,
        help_text="Weekdays, 0 = Monday; empty: every day.",
    )
    start = serializers.TimeField(
        required=False, allow_null=True, input_formats=LOCAL_TIME_FORMATS, help_text="Local time the window opens."
    )
    end = serializers.TimeField(
        required=False, allow_null=True, input_formats=LOCAL_TIME_FORMATS, help_text="Local time the window closes."
    )

    def validate(self, data):
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise serializers.ValidationError({"end": "The window must end after it starts."})
        return data


class CampaignInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    channel = serializers.ChoiceField(choices=Channel.choices)
    segment = serializers.PrimaryKeyRelatedField(queryset=Segment.objects.all())
    subject = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    body = serializers.CharField(max_length=100_000)


class CampaignUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    segment = serializers.PrimaryKeyRelatedField(queryset=Segment.objects.all(), required=False)
    subject = serializers.CharField(max_length=300, required=False, allow_blank=True)
    body = serializers.CharField(max_length=100_000, required=False)


class ScheduleInput(serializers.Serializer):
    scheduled_at = InstantInput(
        required=False,
        allow_null=True,
        help_text="When to start; omitted: now. Without an offset, in the organization's time zone.",
    )
    send_window = SendWindowInput(required=False, allow_null=True)


class CampaignOutput(ModelOutput):
    segment = RecordReference()
    send_window = serializers.SerializerMethodField()
    created_by = PersonIdReference(source="created_by_id", allow_null=True)
    scheduled_by = PersonIdReference(source="scheduled_by_id", allow_null=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "channel",
            "segment",
            "subject",
            "body",
            "status",
            "scheduled_at",
            "send_window",
            "time_zone",
            "paused_reason",
            "recipients",
            "started_at",
            "finished_at",
            "created_by",
            "scheduled_by",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "days": {"type": "array", "items": {"type": "integer"}},
                "start": LOCAL_TIME_SCHEMA,
                "end": LOCAL_TIME_SCHEMA,
            },
        }
    )
    def get_send_window(self, campaign: Campaign):
        if not campaign.window_days and campaign.window_start is None and campaign.window_end is None:
            return None
        return {
            "days": campaign.window_days or [],
            "start": campaign.window_start.strftime("%H:%M:%S") if campaign.window_start else None,
            "end": campaign.window_end.strftime("%H:%M:%S") if campaign.window_end else None,
        }


class PreviewInput(serializers.Serializer):
    contact = ReachableContactField(required=False, allow_null=True, help_text="Sample values without one.")


class TestSendInput(PreviewInput):
    to = serializers.CharField(
        max_length=40, required=False, allow_blank=True, help_text="SMS and WhatsApp: your number (E.164)."
    )


class RenderedOutput(serializers.Serializer):
    subject = serializers.CharField()
    body = serializers.CharField()


class TestSentOutput(RenderedOutput):
    to = serializers.CharField()


class TemplateVariablesOutput(serializers.Serializer):
    variables = serializers.DictField(child=serializers.CharField())
    filters = serializers.ListField(child=serializers.CharField())

    @staticmethod
    def declared() -> dict:
        return {"variables": VARIABLES, "filters": sorted(FILTERS)}


class DeliveryOutput(ModelOutput):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "uuid",
            "contact",
            "channel",
            "address",
            "status",
            "skip_reason",
            "attempts",
            "next_attempt_at",
            "provider_message_id",
            "error",
            "created_at",
            "sent_at",
            "delivered_at",
            "opened_at",
            "clicked_at",
            "bounced_at",
            "failed_at",
            "unsubscribed_at",
        ]


class _CampaignCounts(serializers.Serializer):
    """The delivery counts, over the whole campaign or one bucket of time."""

    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    bounced = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    failed = serializers.IntegerField()


class CampaignStatsBucketOutput(_CampaignCounts):
    at = serializers.DateTimeField()


class CampaignStatsOutput(_CampaignCounts):
    campaign = serializers.IntegerField()
    status = serializers.ChoiceField(choices=CampaignStatus.choices)
    recipients = serializers.IntegerField()
    queued = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skipped_by_reason = serializers.DictField(child=serializers.IntegerField())
    interval = serializers.ChoiceField(choices=STATS_INTERVALS)
    by_time = CampaignStatsBucketOutput(many=True)


# --- consent ---


class ConsentInput(serializers.Serializer):
    contact = ReachableContactField()
    channel = serializers.ChoiceField(choices=Channel.choices)
    status = serializers.ChoiceField(choices=ConsentStatus.choices)
    source = serializers.ChoiceField(choices=RECORDED_SOURCES, default=ConsentSource.API)  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    proof = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class ConsentEventOutput(ModelOutput):
    class Meta:
        model = ConsentEvent
        fields = [
            "id",
            "contact",
            "channel",
            "status",
            "source",
            "proof",
            "campaign_id",
            "actor_id",
            "actor_label",
            "occurred_at",
        ]


class ConsentStateOutput(ModelOutput):
    class Meta:
        model = ConsentState
        fields = ["id", "contact", "channel", "status", "source", "updated_at"]


class SuppressionOutput(ModelOutput):
    class Meta:
        model = Suppression
        fields = ["id", "channel", "address", "reason", "detail", "delivery_id", "created_at"]


__all__ = ["DeliveryStatus", "SkipReason", "SuppressionReason"]
