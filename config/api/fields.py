"""Input fields shared by every app: instants and months that PostgreSQL and Python both hold, so a bad date
is a 400 naming the parameter, never a 500 from the database or the calendar; and request-body references
resolved within the caller's reach (a person who is a member, a record the caller may see), so a foreign id is
"does not exist" (400), never a foreign row."""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from django.utils.module_loading import import_string
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.db import connection

#: Real time zones lie between -12:00 and +14:00; PostgreSQL refuses offsets beyond ±15:59.
MAX_UTC_OFFSET = datetime.timedelta(hours=14)


class InstantField(IsoDateTimeField):
    """An ISO 8601 date-time (a date alone is its midnight, a naive time is UTC), with an offset of at most
    ±14:00, returned in UTC."""

    default_error_messages = {"invalid": "Enter an ISO 8601 date-time, e.g. 2026-01-31T09:30:00Z."}

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        offset = result.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise DjangoValidationError("The UTC offset must be between -14:00 and +14:00.", code="invalid")
        try:
            return result.astimezone(datetime.UTC)
        except OverflowError:
            raise DjangoValidationError("The date-time is out of range.", code="invalid") from None


def parse_instant(raw: str, *, name: str) -> datetime.datetime:
    """A query parameter that is an instant (see :class:`InstantField`): 400 naming ``name`` when it is not."""
    try:
        return InstantField().clean(raw)
    except DjangoValidationError as error:
        detail = serializers.ErrorDetail(error.messages[0], code=error.code or "invalid")
        raise serializers.ValidationError({name: [detail]}) from None


MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


@extend_schema_field({"type": "string", "pattern": MONTH_PATTERN, "example": "2026-01"})
class MonthField(serializers.CharField):
    """A calendar month, ``YYYY-MM`` (years 0001 to 9999), as the date of its first day."""

    default_error_messages = {"invalid": "Enter a month as YYYY-MM, e.g. 2026-01."}

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        if not re.fullmatch(MONTH_PATTERN, text):
            self.fail("invalid")
        try:
            return datetime.date(int(text[:4]), int(text[5:]), 1)
        except ValueError:  # year 0000
            self.fail("invalid")

    def to_representation(self, value):
        return f"{value.year:04d}-{value.month:02d}" if isinstance(value, datetime.date) else value


# --- request-body references ---


@functools.cache
def _member_users() -> Callable[[int], QuerySet]:
    return import_string(settings.API_MEMBER_USERS)


@extend_schema_field(OpenApiTypes.INT)
class MemberField(serializers.PrimaryKeyRelatedField):
    """A user id that must belong to an active member of the request's organization. Who is a member is the
    setting ``API_MEMBER_USERS`` (``rbac.selectors.active_member_users``): the plumbing imports no app."""

    def get_queryset(self) -> Any:
        return _member_users()(self.context["request"].tenant.pk)


@extend_schema_field(OpenApiTypes.INT)
class ScopedRecordField(serializers.PrimaryKeyRelatedField):
    """An id of a record the caller may see: the model's ``visible_to(access, permission)`` (record scope
    applies). A model of an app above the serializer's is named lazily: ``model`` and ``permission`` may be
    functions returning them (crm's activities reach deals through ``crm.records``' registry)."""

    def __init__(
        self, *, model: type[Model] | Callable[[], type[Model]], permission: str | Callable[[], str], **kwargs: Any
    ) -> None:
        self.model, self.permission = model, permission
        super().__init__(**kwargs)

    def get_queryset(self) -> Any:
        assert connection.schema_name != "public"
        model = self.model if isinstance(self.model, type) else self.model()
        permission = self.permission if isinstance(self.permission, str) else self.permission()
        return model.objects.visible_to(self.context["request"].access, permission)  # type: ignore[attr-defined]
