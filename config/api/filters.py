"""List filtering shared by every app: the base filterset (bounded date-times) and the ordering filter.

``?ordering=`` accepts only what the view declares in ``ordering_fields``: anything else is 400
``validation_error`` naming the allowed fields (per-field code ``invalid_ordering``), on every list, never
ignored and never a 500. A view that declares none documents no ``ordering`` parameter and refuses one.
"""

from __future__ import annotations

from django.db import models
from django_filters import rest_framework as filters
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
