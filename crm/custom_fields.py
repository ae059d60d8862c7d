"""Validation of custom field values against the organization's definitions, on every write and filter."""

from __future__ import annotations

import datetime
from typing import Any

from rest_framework import serializers

from .choices import CustomFieldType
from .errors import InvalidCustomField
from .models import CustomField

#: A number is a decimal of at most 15 digits, 4 of them after the point: exact as a JSON number in any client
#: (a double holds 15 significant digits), cheap to check whatever is sent (``1e300000`` is refused from its
#: exponent, never expanded), and the same bound for values written and values filtered on.
NUMBER_MAX_DIGITS, NUMBER_DECIMAL_PLACES = 15, 4
_NUMBER = serializers.DecimalField(max_digits=NUMBER_MAX_DIGITS, decimal_places=NUMBER_DECIMAL_PLACES)


def definitions(record_type: str) -> dict[str, CustomField]:
    return {field.key: field for field in CustomField.objects.filter(record_type=record_type)}


def coerce(field: CustomField, value: Any, *, name: str | None = None) -> Any:
    """``value`` as stored for ``field``; ``name`` is the input named in the error (default: the body's key)."""
    name = name or f"custom_fields.{field.key}"
    if value is None or value == "":
        if field.required:
            raise InvalidCustomField(f"{field.label} is required.", field=name)
        return None
    if field.type == CustomFieldType.TEXT:
        if not isinstance(value, str) or len(value) > 2000:
            raise InvalidCustomField(f"{field.label} must be text of at most 2,000 characters.", field=name)
        return value
    if field.type == CustomFieldType.NUMBER:
        digits = NUMBER_MAX_DIGITS - NUMBER_DECIMAL_PLACES
        refusal = f"{field.label} must be a number of at most {digits} digits before the point and "
        refusal += f"{NUMBER_DECIMAL_PLACES} after it."
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidCustomField(refusal, field=name)
        try:
            number = _NUMBER.run_validation(value)
        except serializers.ValidationError:
            raise InvalidCustomField(refusal, field=name) from None
        return int(number) if number == number.to_integral_value() else float(number)
    if field.type == CustomFieldType.DATE:
        try:
            return datetime.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise InvalidCustomField(f"{field.label} must be a date (YYYY-MM-DD).", field=name) from None
    if field.type == CustomFieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidCustomField(f"{field.label} must be true or false.", field=name)
        return value
    if field.type == CustomFieldType.CHOICE:
        if value not in field.choices:
            raise InvalidCustomField(f"{field.label} must be one of: {', '.join(map(str, field.choices))}.", field=name)
        return value
    raise InvalidCustomField(f"{field.label} has an unknown type.", field=name)


def clean_values(record_type: str, values: dict[str, Any] | None, *, existing: dict | None = None) -> dict[str, Any]:
    """Merge ``values`` over ``existing``: the values written are validated (unknown keys, types), stored values
    left as they are (a rule tightened later never blocks an edit of something else), required fields present."""
    values = values or {}
    if not isinstance(values, dict):
        raise InvalidCustomField("custom_fields must be an object.", field="custom_fields")
    known = definitions(record_type)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidCustomField(f"Unknown custom field: {', '.join(unknown)}.", field=f"custom_fields.{unknown[0]}")
    kept = {key: value for key, value in (existing or {}).items() if key in known}
    clean = {}
    for key, field in known.items():
        value = coerce(field, values[key]) if key in values else kept.get(key)
        if value is None or value == "":
            coerce(field, None)  # raises for a required field
        else:
            clean[key] = value
    return clean
