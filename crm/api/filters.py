import copy

from django import forms
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Lower
from django.http import QueryDict
from django_filters import rest_framework as filters
from django_filters.filters import QuerySetRequestMixin

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


class PreparedFilterSet(api_filters.FilterSet):
    """A filterset prepared once per class rather than on every request.

    django-filter deep-copies every filter, computes every label and builds a form class with one field per filter
    on each request: about 4 ms of CPU for the leads list, more than the rest of the request's Python besides the
    serializer. Here the filters and their form fields are built once per class (the first time it is used); a
    request gets shallow copies of the filters (bound to it, as django-filter binds its deep copies) and validates
    a form that holds only the filters its query string names (and any whose widget reads several parameters).
    An absent filter filters nothing (none is required, and each filter skips an empty value), so the SQL, the
    errors and the results are django-filter's. ``form`` is still the form with every filter (the browsable API
    renders it).

    Only for filters fixed at class definition: a filterset with a filter whose choices come from a queryset
    (``ModelChoiceFilter``: it may depend on the request) or a required filter is handled by django-filter as usual.
    """

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        prepared = self._prepared()
        if prepared is None:
            super().__init__(data, queryset, request=request, prefix=prefix)
            return
        if queryset is None:
            queryset = self._meta.model._default_manager.all()
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {}
        for name, prepared_filter in prepared.items():
            filter_ = copy.copy(prepared_filter)
            filter_.model = queryset.model
            filter_.parent = self
            if filter_.method is not None:
                filter_.method = filter_.method  # a FilterMethod of its own, resolved on this filterset
            self.filters[name] = filter_

    @classmethod
    def _prepared(cls) -> dict | None:
        """The class's filters with their form fields built, or None when it cannot be prepared."""
        if "_prepared_filters" not in cls.__dict__:
            static = all(
                not isinstance(f, QuerySetRequestMixin) and not f.extra.get("required")
                for f in cls.base_filters.values()
            )
            prepared = copy.deepcopy(cls.base_filters) if static else None
            for filter_ in (prepared or {}).values():
                filter_.model = cls._meta.model
                filter_.field  # noqa: B018  (built now, with its label, and shared by the shallow copies)
            cls._prepared_filters = prepared
            cls._always_validated = tuple(
                name for name, f in (prepared or {}).items() if isinstance(f.field.widget, forms.MultiWidget)
            )
            cls._form_classes = {}
        return cls._prepared_filters

    def _form_class_of(self, names: tuple[str, ...]):
        form_class = self._form_classes.get(names)
        if form_class is None:
            fields = {name: self.filters[name].field for name in names}
            form_class = type(f"{type(self).__name__}Form", (self._meta.form,), fields)
            if len(self._form_classes) < 256:
                self._form_classes[names] = form_class
        return form_class

    def get_form_class(self):
        if self._prepared() is None:
            return super().get_form_class()
        return self._form_class_of(tuple(self.filters))

    @property
    def filtering_form(self):
        """The form that validates the query string: the filters it names (all of them with a prefix)."""
        if self._prepared() is None or not self.is_bound or self.form_prefix:
            return self.form
        if not hasattr(self, "_filtering_form"):
            names = tuple(name for name in self.filters if name in self.data or name in self._always_validated)
            self._filtering_form = self._form_class_of(names)(self.data)
        return self._filtering_form

    def is_valid(self):
        return self.is_bound and self.filtering_form.is_valid()

    @property
    def errors(self):
        return self.filtering_form.errors

    def filter_queryset(self, queryset):
        for name, value in self.filtering_form.cleaned_data.items():
            queryset = self.filters[name].filter(queryset, value)
            assert isinstance(queryset, QuerySet), f"{type(self).__name__}.{name} did not return a QuerySet"
        return queryset


class RecordFilter(PreparedFilterSet):
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


class ActivityFilter(PreparedFilterSet):
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


class TagFilter(PreparedFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Tag
        fields = ["name"]


class CustomFieldFilter(PreparedFilterSet):
    record_type = filters.ChoiceFilter(choices=RecordType.choices)

    class Meta:
        model = CustomField
        fields = ["record_type", "type", "required"]
