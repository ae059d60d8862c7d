"""What a column can be mapped to, the mapping's checks, and the cleaning of one cell into a field's value
(validated like the API validates: e-mail format, choices, lengths, numbers, custom fields, tags, members)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.validators import validate_email
from django.db.models import Field

from config.api.errors import Duplicate
from crm import custom_fields
from crm.choices import CustomFieldType, LeadStatus, RecordType
from crm.errors import DuplicateDomain, DuplicateEmail, InvalidCustomField
from crm.models import Company, Contact, CustomField, Lead, Record

from .files import InvalidMapping

MODELS: dict[str, type[Record]] = {RecordType.CONTACT: Contact, RecordType.COMPANY: Company, RecordType.LEAD: Lead}
IMPORTABLE = tuple(MODELS)
# As the API: a lead is created or edited as new or contacted; other statuses have their own actions.
LEAD_IMPORT_STATUSES = (LeadStatus.NEW, LeadStatus.CONTACTED)

# --- targets: what a column can be mapped to ---

_BASE_TARGETS: dict[str, dict[str, str]] = {
    RecordType.CONTACT: {
        "first_name": "text",
        "last_name": "text",
        "email": "email",
        "phone": "text",
        "job_title": "text",
        "company": "company",
        "status": "choice",
        "lifecycle_stage": "choice",
        "source": "choice",
        "do_not_contact": "boolean",
    },
    RecordType.COMPANY: {
        "name": "text",
        "domain": "domain",
        "industry": "text",
        "size": "choice",
        "phone": "text",
        "street": "text",
        "city": "text",
        "region": "text",
        "postal_code": "text",
        "country": "country",
    },
    RecordType.LEAD: {
        "name": "text",
        "email": "email",
        "phone": "text",
        "company_name": "text",
        "source": "choice",
        "status": "lead_status",
        "score": "score",
        "priority": "choice",
        "estimated_value": "money",
    },
}
COMMON_TARGETS = ("owner", "tags")
CUSTOM_PREFIX = "custom_fields."
DEDUPE_KEYS: dict[str, str] = {RecordType.CONTACT: "email", RecordType.COMPANY: "domain", RecordType.LEAD: "email"}
# Dedupe keys that are unique (decision 0007): even with the ``create`` policy a row matching a record fails.
UNIQUE_KEYS: dict[str, type[Duplicate]] = {RecordType.CONTACT: DuplicateEmail, RecordType.COMPANY: DuplicateDomain}


def targets(record_type: str, definitions: dict[str, CustomField]) -> list[str]:
    """Every field a column of a ``record_type`` file can be mapped to."""
    return [*_BASE_TARGETS[record_type], *COMMON_TARGETS, *(CUSTOM_PREFIX + key for key in definitions)]


def resolve_mapping(
    record_type: str, header: list[str], mapping: dict | None, definitions: dict[str, CustomField]
) -> dict[str, str]:
    """``{column header: target}``. Without a mapping, columns named like a field are taken as that field."""
    known = targets(record_type, definitions)
    if not mapping:
        by_name = {name.lower(): name for name in known}
        mapping = {}
        for column in header:
            target = by_name.get(column.strip().lower().replace(" ", "_"))
            if target and target not in mapping.values():
                mapping[column] = target
    if not isinstance(mapping, dict):
        raise InvalidMapping("The mapping must be an object of column header to field.", field="mapping")
    problems: list[tuple[str, str, str]] = []  # (code, column, message)
    resolved: dict[str, str] = {}
    columns = set(header)
    for column, target in mapping.items():
        if target in (None, ""):
            continue
        if column not in columns:
            problems.append(("unknown_column", column, f"The file has no column {column!r}."))
        elif not isinstance(target, str) or target not in known:
            problems.append(("unknown_field", column, f"{target!r} is not a field of a {record_type}."))
        elif target in resolved.values():
            problems.append(("duplicate_field", column, f"Two columns are mapped to {target!r}."))
        else:
            resolved[column] = target
    required = (
        {"name"} if record_type in (RecordType.COMPANY, RecordType.LEAD) else {"email", "first_name", "last_name"}
    )
    if not problems and not required & set(resolved.values()):
        need = " or ".join(sorted(required))
        problems.append(("missing_required_field", "", f"Map a column to {need}."))
    if problems:
        errors = [
            {"field": f"mapping.{column}" if column else "mapping", "code": c, "detail": d} for c, column, d in problems
        ]
        raise InvalidMapping(problems[0][2], extra={"errors": errors})
    return resolved


# --- cells ---


class CellError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


_TRUE, _FALSE = {"true", "yes", "y", "1", "x"}, {"false", "no", "n", "0"}
_TAG_SEPARATORS = re.compile(r"[,;]").split
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")


def normalize_domain(value: str) -> str:
    domain = value.strip().lower()
    domain = re.sub(r"^[a-z][a-z0-9+.-]*://", "", domain)
    domain = domain.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].rstrip(".")
    return domain.removeprefix("www.")


@functools.cache
def _email_user_match() -> Callable:
    return validate_email.user_regex.match  # the compiled pattern's own method, past the lazy wrapper


@functools.lru_cache(maxsize=4096)
def _email_domain_ok(domain: str) -> bool:
    return domain in validate_email.domain_allowlist or validate_email.validate_domain_part(domain)


def is_valid_email(value: str) -> bool:
    """Django's ``validate_email`` (what the API checks), step for step, with its patterns bound once and the
    verdict on each domain cached: a file repeats a few domains thousands of times."""
    if not value or "@" not in value or len(value) > 320:
        return False
    user, domain = value.rsplit("@", 1)
    return _email_user_match()(user) is not None and _email_domain_ok(domain)


def parse_boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CellError("invalid_boolean", "Use true or false.")


def cleaner(
    model: type[Record],
    record_type: str,
    target: str,
    definitions: dict[str, CustomField],
    members: dict[str, int],
) -> Callable[[str], Any]:
    """A function from a non-empty cell text to the field's value, raising :class:`CellError`."""
    if target.startswith(CUSTOM_PREFIX):
        definition = definitions[target[len(CUSTOM_PREFIX) :]]

        def custom(text):
            value: Any = parse_boolean(text) if definition.type == CustomFieldType.BOOLEAN else text
            try:
                return custom_fields.coerce(definition, value)
            except InvalidCustomField as exc:
                raise CellError(exc.code, exc.detail) from None

        return custom
    if target == "owner":

        def owner(text):
            try:
                return members[text.lower()]
            except KeyError:
                raise CellError("unknown_owner", "No active member has this e-mail address.") from None

        return owner
    if target == "tags":

        def tags(text):
            names = [name for name in map(str.strip, _TAG_SEPARATORS(text)) if name]
            if len(names) > 50 or any(len(name) > 50 for name in names):
                raise CellError("invalid_tags", "At most 50 tags of at most 50 characters each.")
            return names

        return tags
    kind = _BASE_TARGETS[record_type][target]
    if kind == "company":
        return _text_cleaner(Company._meta.get_field("name").max_length)
    model_field = model._meta.get_field(target)
    assert isinstance(model_field, Field), f"{target!r} is a column of {record_type} records"
    if kind == "text":
        return _text_cleaner(model_field.max_length)
    if kind == "email":

        def email(text):
            value = text.lower()
            if len(value) > 254 or not is_valid_email(value):
                raise CellError("invalid_email", "Enter a valid e-mail address.")
            return value

        return email
    if kind in ("choice", "lead_status"):
        choices = model_field.flatchoices  # the field's (value, label) pairs
        allowed = LEAD_IMPORT_STATUSES if kind == "lead_status" else [value for value, _label in choices]
        labels = dict(choices)
        lookup = {str(value).lower(): value for value in allowed}
        lookup.update({str(labels[value]).lower(): value for value in allowed})

        def choice(text):
            try:
                return lookup[text.lower()]
            except KeyError:
                raise CellError("invalid_choice", f"Use one of: {', '.join(map(str, allowed))}.") from None

        return choice
    if kind == "boolean":
        return parse_boolean
    if kind == "score":

        def score(text):
            try:
                number = Decimal(text)
            except InvalidOperation:
                number = Decimal("NaN")
            if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= 100:
                raise CellError("invalid_number", "Use a whole number from 0 to 100.")
            return int(number)

        return score
    if kind == "money":

        def money(text):
            try:
                number = Decimal(text)
            except InvalidOperation:
                number = Decimal("NaN")
            exponent = number.as_tuple().exponent  # a letter for NaN and infinities
            ok = number.is_finite() and number >= 0 and isinstance(exponent, int) and exponent >= -2
            if not ok or number >= Decimal(10) ** 12:
                raise CellError("invalid_number", "Use an amount of at least 0 with at most 2 decimal places.")
            return number

        return money
    if kind == "domain":

        def domain(text):
            value = normalize_domain(text)
            if not _DOMAIN.match(value):
                raise CellError("invalid_domain", "Enter a domain such as example.com.")
            return value

        return domain
    if kind == "country":

        def country(text):
            value = text.upper()
            if len(value) != 2 or not value.isalpha() or not value.isascii():
                raise CellError("invalid_country", "Use a two-letter ISO 3166-1 country code, e.g. DE.")
            return value

        return country
    raise AssertionError(f"no cleaner for {kind}")


def _text_cleaner(max_length: int | None) -> Callable[[str], str]:
    assert max_length is not None, "every text target is a CharField"

    def text_value(text):
        if len(text) > max_length:
            raise CellError("max_length", f"Use at most {max_length} characters.")
        return text

    return text_value
