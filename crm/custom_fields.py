"""Validation of custom field values against the organization's definitions, on every write."""

from __future__ import annotations

import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .choices import CustomFieldType
from .errors import InvalidCustomField
from .models import CustomField


def definitions(record_type: str) -> dict[str, CustomField]:
    return {field.key: field for field in CustomField.objects.filter(record_type=record_type)}


def coerce(field: CustomField, value: Any) -> Any:
    name = f"custom_fields.{field.key}"
    if value is None or value == "":
        if field.required:
            raise InvalidCustomField(f"{field.label} is required.", field=name)
        return None
    if field.type == CustomFieldType.TEXT:
        if not isinstance(value, str) or len(value) > 2000:
            raise InvalidCustomField(f"{field.label} must be text of at most 2,000 characters.", field=name)
        return value
    if field.type == CustomFieldType.NUMBER:
        if isinstance(value, bool):
            raise InvalidCustomField(f"{field.label} must be a number.", field=name)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise InvalidCustomField(f"{field.label} must be a number.", field=name) from None
        if not number.is_finite():
            raise InvalidCustomField(f"{field.label} must be a number.", field=name)
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
    """Merge ``values`` over ``existing`` and validate the result: unknown keys, types, required fields."""
    values = values or {}
    if not isinstance(values, dict):
        raise InvalidCustomField("custom_fields must be an object.", field="custom_fields")
    known = definitions(record_type)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidCustomField(f"Unknown custom field: {', '.join(unknown)}.", field=f"custom_fields.{unknown[0]}")
    merged = {key: value for key, value in (existing or {}).items() if key in known}
    merged.update(values)
    clean = {}
    for key, field in known.items():
        value = coerce(field, merged.get(key))
        if value is not None:
            clean[key] = value
    return clean
