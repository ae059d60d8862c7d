from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower
from django_filters import rest_framework as filters

from config.api.errors import ValidationFailed
from crm import custom_fields
from crm.choices import CustomFieldType, LeadSource, LeadStatus, Priority, RecordType
from crm.models import Lead, Tag


class RecordFilter(filters.FilterSet):
    """Filters every owned record has: owner, tags, created/updated ranges."""

    owner = filters.NumberFilter(field_name="owner_id")
    unassigned = filters.BooleanFilter(field_name="owner_id", lookup_expr="isnull")
    tags = filters.CharFilter(method="filter_tags", help_text="Comma-separated tag names; records with any of them.")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="lt")

    record_type: str = ""

    def filter_tags(self, queryset, name, value):
        names = [item.strip().lower() for item in value.split(",") if item.strip()]
        if not names:
            return queryset
        through = queryset.model.tags.through
        tagged = through.objects.filter(
            **{f"{queryset.model._meta.model_name}_id": OuterRef("pk")},
            tag__in=Tag.objects.annotate(lower=Lower("name")).filter(lower__in=names),
        )
        return queryset.filter(Exists(tagged))

    def filter_queryset(self, queryset):
        """Besides the declared filters: ``cf_<key>=<value>`` filters on a custom field."""
        queryset = super().filter_queryset(queryset)
        wanted = {key[3:]: value for key, value in self.data.items() if key.startswith("cf_")}
        if not wanted:
            return queryset
        known = custom_fields.definitions(self.record_type)
        for key, raw in wanted.items():
            field = known.get(key)
            if field is None:
                raise ValidationFailed(f"Unknown custom field {key!r}.", field=f"cf_{key}", code="unknown_filter")
            value = custom_fields.coerce(field, raw if field.type != CustomFieldType.BOOLEAN else raw == "true")
            queryset = queryset.filter(**{f"custom_fields__{key}": value})
        return queryset


class LeadFilter(RecordFilter):
    record_type = RecordType.LEAD
    status = filters.MultipleChoiceFilter(choices=LeadStatus.choices)
    source = filters.MultipleChoiceFilter(choices=LeadSource.choices)
    priority = filters.MultipleChoiceFilter(choices=Priority.choices)
    score_min = filters.NumberFilter(field_name="score", lookup_expr="gte")
    score_max = filters.NumberFilter(field_name="score", lookup_expr="lte")
    value_min = filters.NumberFilter(field_name="estimated_value", lookup_expr="gte")
    value_max = filters.NumberFilter(field_name="estimated_value", lookup_expr="lte")

    class Meta:
        model = Lead
        fields = ["status", "source", "priority", "owner"]
