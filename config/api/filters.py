"""List filtering shared by every app: the base filterset (bounded date-times), the prepared filterset (built once
per class) and the ordering filter.

``?ordering=`` accepts only what the view declares in ``ordering_fields``: anything else is 400
``validation_error`` naming the allowed fields (per-field code ``invalid_ordering``), on every list, never
ignored and never a 500. A view that declares none documents no ``ordering`` parameter and refuses one.
"""

from __future__ import annotations

import copy

from django import forms
from django.db import models
from django.db.models import QuerySet
from django.http import QueryDict
from django_filters import rest_framework as filters
from django_filters.filters import QuerySetRequestMixin
from rest_framework import filters as drf_filters

from .errors import ValidationFailed
from .fields import InstantField


class IsoDateTimeFilter(filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter with :class:`config.api.fields.InstantField`: out-of-range offsets and
    dates are 400, not a database error."""

    field_class = InstantField


class FilterSet(filters.FilterSet):
    """The base of every filterset: filters generated from model date-time fields are bounded too."""

    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.DateTimeField: {"filter_class": IsoDateTimeFilter},
    }


class PreparedFilterSet(FilterSet):
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


class OrderingFilter(drf_filters.OrderingFilter):
    """DRF's ordering filter, strict: the view's ``ordering_fields`` and nothing else."""

    def get_valid_fields(self, queryset, view, context=None):
        return [(name, name) for name in getattr(view, "ordering_fields", None) or ()]

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        terms = [term.strip() for term in (raw or "").split(",") if term.strip()]
        if not terms:
            return self.get_default_ordering(view)
        allowed = [name for name, _label in self.get_valid_fields(queryset, view)]
        unknown = [term for term in terms if term.removeprefix("-") not in allowed]
        if unknown:
            choices = ", ".join(allowed) if allowed else "nothing (this list has a fixed order)"
            raise ValidationFailed(
                f"Cannot order by {', '.join(unknown)}. Order by {choices}; prefix - for descending.",
                field=self.ordering_param,
                code="invalid_ordering",
                extra={"allowed": allowed},
            )
        return terms

    def get_schema_operation_parameters(self, view):
        allowed = [name for name, _label in self.get_valid_fields(None, view)]
        if not allowed:
            return []
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Comma-separated fields to order by; prefix - for descending.",
                "schema": {"type": "array", "items": {"type": "string", "enum": allowed + [f"-{a}" for a in allowed]}},
                "style": "form",
                "explode": False,
            }
        ]
