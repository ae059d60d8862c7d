from django_filters import rest_framework as filters

from config.api.filters import FilterSet

from ..choices import CampaignStatus, Channel, ConsentStatus, DeliveryStatus, SegmentKind, SkipReason
from ..models import Campaign, ConsentEvent, ConsentState, Delivery, Segment, Suppression


class SegmentFilter(FilterSet):
    kind = filters.ChoiceFilter(choices=SegmentKind.choices)
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Segment
        fields = ["kind", "name"]


class CampaignFilter(FilterSet):
    status = filters.MultipleChoiceFilter(choices=CampaignStatus.choices, distinct=False)
    channel = filters.ChoiceFilter(choices=Channel.choices)
    segment = filters.NumberFilter(field_name="segment_id")

    class Meta:
        model = Campaign
        fields = ["status", "channel", "segment"]


class DeliveryFilter(FilterSet):
    campaign = filters.NumberFilter(field_name="campaign_id")
    status = filters.MultipleChoiceFilter(choices=DeliveryStatus.choices, distinct=False)
    skip_reason = filters.ChoiceFilter(choices=SkipReason.choices)
    contact = filters.NumberFilter(field_name="contact_id")

    class Meta:
        model = Delivery
        fields = ["campaign", "status", "skip_reason", "contact"]


class ConsentEventFilter(FilterSet):
    contact = filters.NumberFilter(field_name="contact_id")
    channel = filters.ChoiceFilter(choices=Channel.choices)
    status = filters.ChoiceFilter(choices=ConsentStatus.choices)

    class Meta:
        model = ConsentEvent
        fields = ["contact", "channel", "status"]


class ConsentStateFilter(FilterSet):
    contact = filters.NumberFilter(field_name="contact_id")
    channel = filters.ChoiceFilter(choices=Channel.choices)
    status = filters.ChoiceFilter(choices=ConsentStatus.choices)

    class Meta:
        model = ConsentState
        fields = ["contact", "channel", "status"]


class SuppressionFilter(FilterSet):
    channel = filters.ChoiceFilter(choices=Channel.choices)
    address = filters.CharFilter(method="filter_address")

    class Meta:
        model = Suppression
        fields = ["channel", "address"]

    def filter_address(self, queryset, name, value):
        return queryset.filter(address__iexact=value.strip())
