from django_filters import rest_framework as filters

from config.api import filters as api_filters
from integrations.choices import DeliveryStatus
from integrations.events import EVENTS
from integrations.models import OutboxEvent, WebhookDelivery, WebhookEndpoint


class WebhookEndpointFilter(api_filters.FilterSet):
    is_active = filters.BooleanFilter()

    class Meta:
        model = WebhookEndpoint
        fields = ["is_active"]


class WebhookDeliveryFilter(api_filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=DeliveryStatus.choices, distinct=False)
    event_type = filters.MultipleChoiceFilter(choices=[(name, name) for name in EVENTS], distinct=False)
    created_after = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]


class EventFilter(api_filters.FilterSet):
    type = filters.MultipleChoiceFilter(choices=[(name, name) for name in EVENTS], distinct=False)
    subject_type = filters.CharFilter()
    subject_id = filters.CharFilter()
    occurred_after = api_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = api_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = OutboxEvent
        fields = ["type", "subject_type", "subject_id"]
