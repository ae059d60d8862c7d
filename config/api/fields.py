"""Input fields shared by every app: instants and months that PostgreSQL and Python both hold, so a bad date
is a 400 naming the parameter, never a 500 from the database or the calendar."""

from __future__ import annotations

import datetime
import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

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
