from django_filters import rest_framework as filters

from integrations.choices import DeliveryStatus
from integrations.events import EVENTS
from integrations.models import OutboxEvent, WebhookDelivery, WebhookEndpoint


class WebhookEndpointFilter(filters.FilterSet):
    is_active = filters.BooleanFilter()

    class Meta:
        model = WebhookEndpoint
        fields = ["is_active"]


class WebhookDeliveryFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=DeliveryStatus.choices, distinct=False)
    event_type = filters.MultipleChoiceFilter(choices=[(name, name) for name in EVENTS], distinct=False)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]


class EventFilter(filters.FilterSet):
    type = filters.MultipleChoiceFilter(choices=[(name, name) for name in EVENTS], distinct=False)
    subject_type = filters.CharFilter()
    subject_id = filters.CharFilter()
    occurred_after = filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = OutboxEvent
        fields = ["type", "subject_type", "subject_id"]
