from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.outputs import ModelOutput
from integrations.choices import DeliveryStatus
from integrations.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class WebhookEndpointInput(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000, help_text="An https (or http) URL on a public address; credentials in the URL are refused."
    )
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64),
        min_length=1,
        max_length=100,
        help_text='Event types to receive (see /webhooks/event-types/), or ["*"] for all of them.',
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class WebhookEndpointOutput(ModelOutput):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "event_types": {"help_text": 'Subscribed event types, or ["*"].'},
            "failing_since": {"help_text": "Start of the current run of failed attempts, if any."},
            "previous_secret_expires_at": {"help_text": "Until then the previous secret signs too (after a rotation)."},
        }


class WebhookEndpointSecretOutput(WebhookEndpointOutput):
    secret = serializers.SerializerMethodField(help_text="The signing secret (whsec_…). Shown once; store it now.")

    class Meta(WebhookEndpointOutput.Meta):
        fields = [*WebhookEndpointOutput.Meta.fields, "secret"]

    def get_secret(self, obj) -> str:
        return self.context["secret"]


class EventTypeOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    schema = serializers.JSONField(help_text="JSON Schema (draft 2020-12) of the event's `data`.")


class WebhookAttemptOutput(ModelOutput):
    class Meta:
        model = WebhookAttempt
        fields = ["id", "attempted_at", "succeeded", "response_status", "latency_ms", "response_body", "error"]
        extra_kwargs = {"response_body": {"help_text": "The first 2 KB of the response."}}


class WebhookDeliveryOutput(ModelOutput):
    webhook_id = serializers.CharField(read_only=True, help_text="The webhook-id header: the same on every attempt.")
    event = serializers.UUIDField(source="event_id", read_only=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, read_only=True)
    attempts = WebhookAttemptOutput(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook_id",
            "event",
            "event_type",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_attempt_at",
            "last_response_status",
            "last_error",
            "delivered_at",
            "created_at",
            "attempts",
        ]


class ReplayInput(serializers.Serializer):
    since = serializers.DateTimeField(help_text="Deliver again every subscribed event that happened since then.")


class ReplayOutput(serializers.Serializer):
    deliveries = serializers.IntegerField(help_text="Deliveries queued.")


class ActorOutput(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label, as DRF allows


class EventOutput(ModelOutput):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = OutboxEvent
        fields = ["id", "type", "subject_type", "subject_id", "actor", "payload", "occurred_at"]

    @extend_schema_field(ActorOutput(allow_null=True))
    def get_actor(self, obj):
        if obj.actor_id is None and not obj.actor_label:
            return None
        return {"id": obj.actor_id, "label": obj.actor_label}
