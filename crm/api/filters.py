"""The CRM lists' filtersets. The generic parts (the prepared base, bounded date-times, strict ordering) are
shared plumbing in ``config/api/filters.py``; what every owned record filters on (owner, tags, dates, custom
fields) is :class:`RecordFilter`, which deals use too."""

from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower
from django_filters import rest_framework as filters

from config.api import filters as api_filters
from config.api.errors import ValidationFailed
from crm import custom_fields
from crm.choices import (
    ActivityKind,
    CompanySize,
    ContactStatus,
    CustomFieldType,
    LeadSource,
    LeadStatus,
    LifecycleStage,
    Priority,
    RecordType,
)
from crm.models import Activity, Company, Contact, CustomField, Lead, Tag
from crm.services import normalize_domain, normalize_email


class RecordFilter(api_filters.PreparedFilterSet):
    """Filters every owned record has: owner, tags, created/updated ranges."""

    owner = filters.NumberFilter(field_name="owner_id")
    unassigned = filters.BooleanFilter(field_name="owner_id", lookup_expr="isnull")
    tags = filters.CharFilter(method="filter_tags", help_text="Comma-separated tag names; records with any of them.")
    created_after = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = api_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = api_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="lt")

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
            raw_value = raw if field.type != CustomFieldType.BOOLEAN else raw == "true"
            value = custom_fields.coerce(field, raw_value, name=f"cf_{key}")
            queryset = queryset.filter(**{f"custom_fields__{key}": value})
        return queryset


class LeadFilter(RecordFilter):
    record_type = RecordType.LEAD
    status = filters.MultipleChoiceFilter(choices=LeadStatus.choices, distinct=False)
    source = filters.MultipleChoiceFilter(choices=LeadSource.choices, distinct=False)
    priority = filters.MultipleChoiceFilter(choices=Priority.choices, distinct=False)
    score_min = filters.NumberFilter(field_name="score", lookup_expr="gte")
    score_max = filters.NumberFilter(field_name="score", lookup_expr="lte")
    value_min = filters.NumberFilter(field_name="estimated_value", lookup_expr="gte")
    value_max = filters.NumberFilter(field_name="estimated_value", lookup_expr="lte")

    class Meta:
        model = Lead
        fields = ["status", "source", "priority", "owner"]


class CompanyFilter(RecordFilter):
    record_type = RecordType.COMPANY
    name = filters.CharFilter(lookup_expr="icontains")
    domain = filters.CharFilter(method="filter_domain")
    industry = filters.CharFilter(lookup_expr="iexact")
    size = filters.MultipleChoiceFilter(choices=CompanySize.choices, distinct=False)
    city = filters.CharFilter(lookup_expr="iexact")
    country = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Company
        fields = ["name", "domain", "industry", "size", "city", "country", "owner"]

    def filter_domain(self, queryset, name, value):
        return queryset.filter(domain=normalize_domain(value))


class ContactFilter(RecordFilter):
    record_type = RecordType.CONTACT
    status = filters.MultipleChoiceFilter(choices=ContactStatus.choices, distinct=False)
    lifecycle_stage = filters.MultipleChoiceFilter(choices=LifecycleStage.choices, distinct=False)
    source = filters.MultipleChoiceFilter(choices=LeadSource.choices, distinct=False)
    company = filters.NumberFilter(field_name="company_id")
    email = filters.CharFilter(method="filter_email", help_text="Exact address, case-insensitive.")
    has_email = filters.BooleanFilter(method="filter_has_email")
    do_not_contact = filters.BooleanFilter()

    class Meta:
        model = Contact
        fields = ["status", "lifecycle_stage", "source", "owner", "company", "do_not_contact"]

    def filter_email(self, queryset, name, value):
        return queryset.filter(email=normalize_email(value))

    def filter_has_email(self, queryset, name, value):
        return queryset.exclude(email="") if value else queryset.filter(email="")


class ActivityFilter(api_filters.PreparedFilterSet):
    kind = filters.MultipleChoiceFilter(choices=ActivityKind.choices, distinct=False)
    owner = filters.NumberFilter(field_name="owner_id")
    mine = filters.BooleanFilter(method="filter_mine", help_text="Only the caller's own activities.")
    open = filters.BooleanFilter(field_name="completed_at", lookup_expr="isnull", help_text="Not completed yet.")
    contact = filters.NumberFilter(field_name="contact_id")
    company = filters.NumberFilter(field_name="company_id")
    lead = filters.NumberFilter(field_name="lead_id")
    deal = filters.NumberFilter(field_name="deal_id")
    due_after = api_filters.IsoDateTimeFilter(field_name="due_at", lookup_expr="gte")
    due_before = api_filters.IsoDateTimeFilter(field_name="due_at", lookup_expr="lt")
    completed_after = api_filters.IsoDateTimeFilter(field_name="completed_at", lookup_expr="gte")
    completed_before = api_filters.IsoDateTimeFilter(field_name="completed_at", lookup_expr="lt")
    created_after = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Activity
        fields = ["kind", "owner", "contact", "company", "lead", "deal"]

    def filter_mine(self, queryset, name, value):
        if not value:
            return queryset
        user_id = self.request.access.user_id
        return queryset.filter(owner_id=user_id) if user_id is not None else queryset.none()


class TagFilter(api_filters.PreparedFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Tag
        fields = ["name"]


class CustomFieldFilter(api_filters.PreparedFilterSet):
    record_type = filters.ChoiceFilter(choices=RecordType.choices)

    class Meta:
        model = CustomField
        fields = ["record_type", "type", "required"]
