"""Imports of contacts, companies and leads from CSV or XLSX files.

:func:`import_job_create` runs in the request: it checks the file (size, format, encoding, header, row count) and
the column mapping, stores the file and queues :func:`crm.tasks.import_run_task` after commit.
:func:`import_run` runs in the task: it streams the file and works in batches of ``IMPORT_BATCH_SIZE`` rows. Each
batch is one transaction: one dedupe lookup, bulk inserts and updates, the domain events (bulk, in the same
transaction) and the job's progress. A retried or redelivered task resumes after the last committed batch; a
second runner of the same job steps aside (an advisory lock per job). Rows that fail validation are reported,
one line per problem, in the job's errors CSV; the other rows are kept.

Settings (read with defaults): ``IMPORT_MAX_BYTES`` (50 MiB, larger uploads: 413 ``file_too_large``),
``IMPORT_MAX_ROWS`` (100,000 rows, more: 400 ``too_many_rows``), ``IMPORT_BATCH_SIZE`` (1,000) and
``IMPORT_WORK_DIR`` (where the errors CSV grows while a job runs; ``MEDIA_ROOT/imports/work``).

Rules a user sees:

- Encoding: UTF-8, with or without a BOM. Anything else is refused (400 ``invalid_encoding``) rather than guessed:
  cp1252, Latin-1 and other single-byte code pages decode any byte, so a wrong guess silently stores mojibake.
  Spreadsheet applications offer "CSV UTF-8"; XLSX files carry their own encoding.
- CSV delimiter: ``,``, ``;`` or tab, whichever the header line has most of.
- Row numbers are spreadsheet rows (the header is row 1). Blank rows are ignored and not counted.
- A CSV row with more or fewer cells than the header is ``malformed_row``; cells are validated like the API does
  (e-mail format, choices, lengths, numbers, custom fields, tags); the owner column takes a member's e-mail.
- Dedupe: contacts and leads by e-mail, companies by domain. A record created earlier in the same file counts as
  existing. ``skip`` leaves a match alone; ``update`` writes the row's non-empty cells over it (an empty cell never
  clears a value; tags are added, never removed), and a row that changes nothing is counted as skipped and records
  no event; ``create`` always creates, except for contacts, whose e-mail is unique (``duplicate_email``).
- Records are owned by the importing user unless an ``owner`` column names another member.
- The contacts limit of the plan is enforced per batch: past it, rows are reported as ``plan_limit_reached``.
- Cell values are stored as given, formulas included (``=...``); exports neutralize them (see ``crm.exports``).
  A cell that an export neutralized (``'=...``) is read back without the quote.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import itertools
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import connection, models, transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone
from rest_framework import status

from billing.features import Limit
from billing.services import LIMIT_LOCK_NAMESPACE
from billing.usage import counter_for
from config.api.errors import Conflict, DomainError, ValidationFailed
from integrations import outbox
from integrations.models import OutboxEvent
from rbac.access import Access, access_for, actor_identity, entitlements_for
from rbac.errors import PermissionDenied
from rbac.scoping import can_reach

from . import custom_fields
from .choices import CustomFieldType, DedupePolicy, ImportStatus, LeadSource, LeadStatus, RecordType
from .errors import InvalidCustomField
from .models import Company, Contact, CustomField, ImportJob, Lead
from .tagging import tags_named

IMPORT_LOCK_NAMESPACE = 0x1A7B
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_DELIMITERS = (",", ";", "\t")
ERRORS_HEADER = ["row", "field", "code", "message"]
MODELS: dict[str, type[models.Model]] = {
    RecordType.CONTACT: Contact,
    RecordType.COMPANY: Company,
    RecordType.LEAD: Lead,
}
IMPORTABLE = tuple(MODELS)
_FINISHED = (ImportStatus.COMPLETED, ImportStatus.FAILED)
# As the API: a lead is created or edited as new or contacted; other statuses have their own actions.
LEAD_IMPORT_STATUSES = (LeadStatus.NEW, LeadStatus.CONTACTED)


def max_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_BYTES", 50 * 1024 * 1024))


def max_rows() -> int:
    return int(getattr(settings, "IMPORT_MAX_ROWS", 100_000))


def batch_size() -> int:
    return int(getattr(settings, "IMPORT_BATCH_SIZE", 1000))


def work_dir() -> Path:
    return Path(getattr(settings, "IMPORT_WORK_DIR", "") or Path(settings.MEDIA_ROOT) / "imports" / "work")


# --- errors ---


class FileTooLarge(DomainError):
    code = "file_too_large"
    status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    title = "The file is too large."


class EmptyFile(ValidationFailed):
    code = "empty_file"
    title = "The file has no rows to import."


class InvalidEncoding(ValidationFailed):
    code = "invalid_encoding"
    title = "The file is not UTF-8 text. Save it as 'CSV UTF-8' or as an .xlsx workbook."


class UnsupportedFile(ValidationFailed):
    code = "unsupported_file_type"
    title = "The file is neither CSV nor XLSX."


class TooManyRows(ValidationFailed):
    code = "too_many_rows"
    title = "The file has too many rows."


class InvalidMapping(ValidationFailed):
    code = "invalid_mapping"
    title = "The column mapping is invalid."


class ImportNotFinished(Conflict):
    code = "import_not_finished"
    title = "The import is still running; its errors are ready when it finishes."


class _Unreadable(Exception):
    """The stored file cannot be read any more: the job fails with this reason."""


# --- reading files ---


def neutralize(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, made inert with a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def cell_text(raw: Any) -> str:
    """A cell as trimmed text, whatever its type in the file. The quote an export put before a formula goes."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
            return text[1:]
        return text
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, datetime.datetime):
        return raw.date().isoformat() if raw.time() == datetime.time() else raw.isoformat()
    if isinstance(raw, datetime.date):
        return raw.isoformat()
    return str(raw).strip()


@dataclass(frozen=True)
class RowProblem:
    """A row that could not even be split into cells."""

    code: str
    message: str


def detect_format(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnsupportedFile("Legacy .xls workbooks are not supported: save the file as .xlsx or CSV UTF-8.")
    return "csv"


def _csv_rows(binary) -> Iterator[tuple[int, list | RowProblem]]:
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        first = text.readline()
        delimiter = max(CSV_DELIMITERS, key=first.count) if any(d in first for d in CSV_DELIMITERS) else ","
        lines = itertools.chain([first] if first else [], text)  # not a generator: it must not close the file
        reader = csv.reader(lines, delimiter=delimiter)
        number = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield number, RowProblem("malformed_row", f"The row cannot be read: {exc}.")
                continue
            number += 1
            yield number, cells
    finally:
        with contextlib.suppress(ValueError):  # already closed by the caller
            text.detach()  # the caller owns the binary file


def _xlsx_rows(binary) -> Iterator[tuple[int, list | RowProblem]]:
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(binary, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise UnsupportedFile("The workbook cannot be opened; save it again as .xlsx.") from exc
    try:
        if not workbook.worksheets:
            return
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        number = 0
        while True:
            try:
                cells = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # a damaged part of the workbook
                raise UnsupportedFile(f"The workbook cannot be read after row {number}; save it again.") from exc
            number += 1
            yield number, list(cells)
    finally:
        workbook.close()


def _is_blank(cells: list) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def read_rows(binary, file_format: str) -> Iterator[tuple[int, list | RowProblem]]:
    """``(row number, cells)``: the header (row 1) first, then every row that is not blank."""
    rows = _xlsx_rows(binary) if file_format == "xlsx" else _csv_rows(binary)
    header_seen = False
    for number, cells in rows:
        if isinstance(cells, RowProblem):
            yield number, cells
        elif not header_seen:
            header_seen = True
            yield number, cells
        elif not _is_blank(cells):
            yield number, cells


def header_names(cells: list) -> list[str]:
    names = [cell_text(cell) for cell in cells]
    while names and not names[-1]:
        names.pop()
    return names


@dataclass(frozen=True)
class FileInfo:
    file_format: str
    header: list[str]
    total_rows: int


def inspect_file(binary, *, row_limit: int | None = None) -> FileInfo:
    """Format, header and number of rows of an uploaded file; refuses empty, non-UTF-8 and too long files."""
    row_limit = max_rows() if row_limit is None else row_limit
    binary.seek(0)
    head = binary.read(8)
    binary.seek(0)
    if not head:
        raise EmptyFile("The file is empty.")
    file_format = detect_format(head)
    header: list[str] | None = None
    total = 0
    try:
        for number, cells in read_rows(binary, file_format):
            if header is None:
                if isinstance(cells, RowProblem):
                    raise UnsupportedFile(f"The header row cannot be read: {cells.message}")
                header = header_names(cells)
                if number != 1 or not header:
                    raise EmptyFile("The first row must name the columns.")
                continue
            total += 1
            if total > row_limit:
                raise TooManyRows(
                    f"The file has more than {row_limit:,} rows; split it into smaller files.",
                    extra={"max_rows": row_limit},
                )
    except UnicodeDecodeError as exc:
        raise InvalidEncoding(extra={"position": exc.start}) from None
    finally:
        binary.seek(0)
    if header is None:
        raise EmptyFile("The file is empty.")
    if total == 0:
        raise EmptyFile("The file has a header but no rows.")
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise InvalidMapping(f"Two columns are named {name!r}.", field="file", code="duplicate_column")
        seen.add(name)
    return FileInfo(file_format=file_format, header=header, total_rows=total)


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
DEDUPE_KEYS = {RecordType.CONTACT: "email", RecordType.COMPANY: "domain", RecordType.LEAD: "email"}


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
    problems, resolved = [], {}
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


# --- creating a job (in the request) ---


def _can_import(access: Access, record_type: str) -> None:
    permission = f"crm.{record_type}.import"
    if access.scope(permission) is None:
        raise PermissionDenied(extra={"permission": permission})


@transaction.atomic
def import_job_create(
    *,
    actor: Access,
    upload: File,
    record_type: str,
    mapping: dict | None = None,
    dedupe_policy: str = DedupePolicy.SKIP,
) -> ImportJob:
    """Check an uploaded file and queue its import. Refuses what cannot work before anything runs."""
    if record_type not in IMPORTABLE:
        raise ValidationFailed(f"{record_type!r} records cannot be imported.", field="record_type", code="invalid")
    _can_import(actor, record_type)
    if dedupe_policy not in DedupePolicy.values:
        raise ValidationFailed("Unknown dedupe policy.", field="dedupe_policy", code="invalid_choice")
    limit = max_bytes()
    if upload.size is not None and upload.size > limit:
        raise FileTooLarge(f"The file is larger than {limit:,} bytes.", extra={"max_bytes": limit})
    info = inspect_file(upload)
    definitions = custom_fields.definitions(record_type)
    resolved = resolve_mapping(record_type, info.header, mapping, definitions)
    original = os.path.basename(str(getattr(upload, "name", "") or "upload"))[:255]
    job = ImportJob(
        record_type=record_type,
        original_filename=original,
        file_format=info.file_format,
        mapping=resolved,
        dedupe_policy=dedupe_policy,
        total_rows=info.total_rows,
        created_by_id=actor.user_id,
    )
    upload.seek(0)
    job.file.save(f"{connection.schema_name}/{job.pk}.{info.file_format}", upload, save=False)
    job.save()
    transaction.on_commit(lambda: _queue(job.pk))
    return job


def _queue(job_id) -> None:
    from .tasks import import_run_task

    import_run_task.delay(str(job_id))


# --- running a job (in the task) ---


class _CellError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


_TRUE, _FALSE = {"true", "yes", "y", "1", "x"}, {"false", "no", "n", "0"}
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")


def normalize_domain(value: str) -> str:
    domain = value.strip().lower()
    domain = re.sub(r"^[a-z][a-z0-9+.-]*://", "", domain)
    domain = domain.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].rstrip(".")
    return domain.removeprefix("www.")


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _CellError("invalid_boolean", "Use true or false.")


def _cleaner(model, record_type: str, target: str, definitions, members) -> Callable[[str], Any]:
    """A function from a non-empty cell text to the field's value, raising :class:`_CellError`."""
    if target.startswith(CUSTOM_PREFIX):
        definition = definitions[target[len(CUSTOM_PREFIX) :]]

        def custom(text):
            value: Any = _boolean(text) if definition.type == CustomFieldType.BOOLEAN else text
            try:
                return custom_fields.coerce(definition, value)
            except InvalidCustomField as exc:
                raise _CellError(exc.code, exc.detail) from None

        return custom
    if target == "owner":

        def owner(text):
            try:
                return members[text.lower()]
            except KeyError:
                raise _CellError("unknown_owner", "No active member has this e-mail address.") from None

        return owner
    if target == "tags":

        def tags(text):
            names = [name.strip() for name in re.split(r"[,;]", text) if name.strip()]
            if len(names) > 50 or any(len(name) > 50 for name in names):
                raise _CellError("invalid_tags", "At most 50 tags of at most 50 characters each.")
            return names

        return tags
    kind = _BASE_TARGETS[record_type][target]
    if kind == "company":
        return _text_cleaner(Company._meta.get_field("name").max_length)
    model_field = model._meta.get_field(target)
    if kind == "text":
        return _text_cleaner(model_field.max_length)
    if kind == "email":

        def email(text):
            value = text.lower()
            try:
                if len(value) > 254:
                    raise ValidationError("too long")
                validate_email(value)
            except ValidationError:
                raise _CellError("invalid_email", "Enter a valid e-mail address.") from None
            return value

        return email
    if kind in ("choice", "lead_status"):
        allowed = LEAD_IMPORT_STATUSES if kind == "lead_status" else [value for value, _label in model_field.choices]
        labels = dict(model_field.choices)
        lookup = {str(value).lower(): value for value in allowed}
        lookup.update({str(labels[value]).lower(): value for value in allowed})

        def choice(text):
            try:
                return lookup[text.lower()]
            except KeyError:
                raise _CellError("invalid_choice", f"Use one of: {', '.join(map(str, allowed))}.") from None

        return choice
    if kind == "boolean":
        return _boolean
    if kind == "score":

        def score(text):
            try:
                number = Decimal(text)
            except InvalidOperation:
                number = Decimal("NaN")
            if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= 100:
                raise _CellError("invalid_number", "Use a whole number from 0 to 100.")
            return int(number)

        return score
    if kind == "money":

        def money(text):
            try:
                number = Decimal(text)
            except InvalidOperation:
                number = Decimal("NaN")
            ok = number.is_finite() and number >= 0 and number.as_tuple().exponent >= -2
            if not ok or number >= Decimal(10) ** 12:
                raise _CellError("invalid_number", "Use an amount of at least 0 with at most 2 decimal places.")
            return number

        return money
    if kind == "domain":

        def domain(text):
            value = normalize_domain(text)
            if not _DOMAIN.match(value):
                raise _CellError("invalid_domain", "Enter a domain such as example.com.")
            return value

        return domain
    if kind == "country":

        def country(text):
            value = text.upper()
            if len(value) != 2 or not value.isalpha() or not value.isascii():
                raise _CellError("invalid_country", "Use a two-letter ISO 3166-1 country code, e.g. DE.")
            return value

        return country
    raise AssertionError(f"no cleaner for {kind}")


def _text_cleaner(max_length: int) -> Callable[[str], str]:
    def text_value(text):
        if len(text) > max_length:
            raise _CellError("max_length", f"Use at most {max_length} characters.")
        return text

    return text_value


@dataclass
class _Row:
    number: int
    cells: list
    values: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    tags: list[str] | None = None
    company: str = ""
    key: str = ""


Problem = tuple[str, str, str]  # (field, code, message)


@dataclass
class _Plan:
    """What a running job needs for every row: the caller's access, the columns and their cleaners."""

    record_type: str
    model: type[models.Model]
    access: Access
    organization: Any
    policy: str
    file_format: str
    width: int
    columns: list[tuple[int, str, Callable[[str], Any]]]
    definitions: dict[str, CustomField]
    key_field: str
    actor_id: int | None
    actor_label: str

    @property
    def name(self) -> str:
        return self.model._meta.model_name


def _plan_for(job: ImportJob, header: list[str]) -> _Plan:
    organization = connection.tenant
    access = None
    if job.created_by_id is not None:
        access = access_for(user=job.created_by, organization=organization)
    if access is None or access.scope(f"crm.{job.record_type}.import") is None:
        raise _Unreadable("The person who started the import may no longer import these records.")
    definitions = custom_fields.definitions(job.record_type)
    model = MODELS[job.record_type]
    members: dict[str, int] = {}
    if "owner" in job.mapping.values():
        from rbac.selectors import members_of

        active = members_of(organization=organization).filter(is_active=True)
        members = {email.lower(): user_id for email, user_id in active.values_list("user__email", "user_id")}
    positions = {name: index for index, name in enumerate(header) if name}
    known = set(targets(job.record_type, definitions))
    columns = []
    for column, target in job.mapping.items():
        if column not in positions or target not in known:
            raise _Unreadable(f"The column {column!r} or the field {target!r} no longer exists.")
        columns.append((positions[column], target, _cleaner(model, job.record_type, target, definitions, members)))
    columns.sort(key=lambda column: column[0])  # problems are reported in the file's column order
    actor_id, actor_label = actor_identity(access)
    return _Plan(
        record_type=job.record_type,
        model=model,
        access=access,
        organization=organization,
        policy=job.dedupe_policy,
        file_format=job.file_format,
        width=len(header),
        columns=columns,
        definitions=definitions,
        key_field=DEDUPE_KEYS[job.record_type],
        actor_id=actor_id,
        actor_label=actor_label,
    )


def _clean(plan: _Plan, number: int, cells: list | RowProblem) -> _Row | list[Problem]:
    """A row's values, or its problems."""
    if isinstance(cells, RowProblem):
        return [("", cells.code, cells.message)]
    if plan.file_format == "csv" and len(cells) != plan.width:
        if len(cells) < plan.width or not _is_blank(cells[plan.width :]):
            return [("", "malformed_row", f"Expected {plan.width} cells, found {len(cells)}.")]
    row = _Row(number=number, cells=cells)
    problems = []
    for index, target, clean in plan.columns:
        text = cell_text(cells[index]) if index < len(cells) else ""
        if not text:
            continue
        try:
            value = clean(text)
        except _CellError as exc:
            problems.append((target, exc.code, exc.message))
            continue
        if target.startswith(CUSTOM_PREFIX):
            if value is not None:
                row.custom[target[len(CUSTOM_PREFIX) :]] = value
        elif target == "tags":
            row.tags = value
        elif target == "company":
            row.company = value
        elif target == "owner":
            row.values["owner_id"] = value
        else:
            row.values[target] = value
    if problems:
        return problems
    row.key = row.values.get(plan.key_field, "")
    return row


@dataclass
class _Outcome:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[tuple[int, list, list[Problem]]] = field(default_factory=list)

    def fail(self, row: _Row, problem: Problem) -> None:
        self.errors.append((row.number, row.cells, [problem]))


@dataclass
class _New:
    instance: models.Model
    tag_ids: set[int]


@dataclass
class _Change:
    record: models.Model
    changes: dict[str, list] = field(default_factory=dict)
    tag_ids: set[int] = field(default_factory=set)


_encoder = DjangoJSONEncoder()


def _jsonable(value: Any) -> Any:
    return json.loads(_encoder.encode(value))


def _contacts_room(plan: _Plan) -> int | None:
    """How many contacts the plan still allows (None: no limit). Takes the limit's lock until commit, as
    ``billing.services.enforce_limit`` does, so concurrent creates cannot pass the limit together."""
    value = entitlements_for(organization=plan.organization).limit(Limit.CONTACTS)
    if value is None:
        return None
    key = zlib.crc32(f"{plan.organization.pk}:{Limit.CONTACTS}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LIMIT_LOCK_NAMESPACE, key - 2**31])
    counter = counter_for(Limit.CONTACTS)
    used = counter(plan.organization) if counter is not None else Contact.objects.count()
    return max(0, value - used)


def _matches(plan: _Plan, keys: set[str]) -> dict[str, models.Model]:
    """Existing records by dedupe key, in one query; the oldest wins where keys repeat (leads)."""
    if not keys:
        return {}
    queryset = plan.model.objects.filter(**{f"{plan.key_field}__in": keys}).order_by("-pk")
    if plan.policy == DedupePolicy.UPDATE:
        queryset = queryset.select_for_update(of=("self",))
    return {getattr(record, plan.key_field): record for record in queryset}


def _event(plan: _Plan, event_type: str, subject, payload: dict) -> OutboxEvent:
    return OutboxEvent(
        type=event_type,
        subject_type=subject._meta.model_name,
        subject_id=str(subject.pk),
        actor_id=plan.actor_id,
        actor_label=plan.actor_label,
        payload=payload,
    )


def _companies(plan: _Plan, rows: list[_Row], events: list[OutboxEvent]) -> dict[str, int]:
    """Ids of the contacts' companies by lower-cased name: companies the importer sees, else new ones."""
    wanted = {row.company.lower(): row.company for row in rows if row.company}
    if not wanted:
        return {}
    visible = Company.objects.visible_to(plan.access, "crm.company.view").annotate(lname=Lower("name"))
    found = dict(visible.filter(lname__in=list(wanted)).order_by("-pk").values_list("lname", "pk"))
    missing = [name for lname, name in wanted.items() if lname not in found]
    if missing and plan.access.scope("crm.company.create") is not None:
        for company in Company.objects.bulk_create([Company(name=name, owner_id=plan.actor_id) for name in missing]):
            found[company.name.lower()] = company.pk
            events.append(_event(plan, "company.created", company, outbox.snapshot(company)))
    return found


def _custom_merged(plan: _Plan, existing: dict, values: dict) -> dict:
    """As ``custom_fields.clean_values`` (values already coerced): known keys of ``existing`` under ``values``,
    required fields present. Raises :class:`InvalidCustomField`."""
    merged = {key: value for key, value in existing.items() if key in plan.definitions}
    merged.update(values)
    for key, definition in plan.definitions.items():
        if merged.get(key) is None:
            merged.pop(key, None)
            custom_fields.coerce(definition, None)  # raises for a required field
    return merged


def _custom_problem(exc: InvalidCustomField) -> Problem:
    errors = exc.extra.get("errors") or [{"field": "custom_fields"}]
    return (errors[0]["field"], exc.code, exc.detail)


def _new_instance(plan: _Plan, values: dict, row: _Row) -> models.Model | Problem:
    if plan.record_type == RecordType.CONTACT:
        if not (values.get("first_name") or values.get("last_name") or values.get("email")):
            return ("", "required", "A contact needs a first name, a last name or an e-mail address.")
    elif not values.get("name"):
        return ("name", "required", "This field is required.")
    try:
        custom = _custom_merged(plan, {}, row.custom)
    except InvalidCustomField as exc:
        return _custom_problem(exc)
    values.setdefault("owner_id", plan.actor_id)
    if plan.record_type != RecordType.COMPANY:
        values.setdefault("source", LeadSource.IMPORT)
    return plan.model(**values, custom_fields=custom)


def _merge(plan: _Plan, instance: models.Model, values: dict, row: _Row, changes: dict) -> bool | Problem:
    """Write the row's values over ``instance``; note ``{field: [before, after]}`` in ``changes``."""
    custom = None
    if row.custom:
        try:
            custom = _custom_merged(plan, instance.custom_fields or {}, row.custom)
        except InvalidCustomField as exc:
            return _custom_problem(exc)
        values = {**values, "custom_fields": custom}
    changed = False
    for name, value in values.items():
        before = getattr(instance, name)
        if before != value:
            if name in changes:
                changes[name][1] = value
            else:
                changes[name] = [before, value]
            setattr(instance, name, value)
            changed = True
    return changed


def _existing_tags(plan: _Plan, records: Iterable[models.Model]) -> dict[int, dict[int, str]]:
    """``{record id: {tag id: name}}`` for the matched records, in one query."""
    through, name = plan.model.tags.through, plan.name
    found: dict[int, dict[int, str]] = {}
    ids = [record.pk for record in records]
    rows = through.objects.filter(**{f"{name}_id__in": ids}).values_list(f"{name}_id", "tag_id", "tag__name")
    for record_id, tag_id, tag_name in rows:
        found.setdefault(record_id, {})[tag_id] = tag_name
    return found


def _apply_batch(plan: _Plan, rows: list[_Row], outcome: _Outcome) -> None:
    """Create, update or skip the valid rows of one batch and record their events, in the caller's transaction:
    a constant number of queries per batch."""
    model, name = plan.model, plan.name
    events: list[OutboxEvent] = []
    dedupes = plan.policy != DedupePolicy.CREATE or plan.record_type == RecordType.CONTACT
    matches = _matches(plan, {row.key for row in rows if row.key}) if dedupes else {}
    company_ids = _companies(plan, rows, events) if plan.record_type == RecordType.CONTACT else {}
    wanted_tags = sorted({tag for row in rows for tag in row.tags or []})
    tags = {tag.name.lower(): tag for tag in tags_named(wanted_tags)} if wanted_tags else {}
    tag_names = {tag.pk: tag.name for tag in tags.values()}
    updating = plan.policy == DedupePolicy.UPDATE
    existing_tags = _existing_tags(plan, matches.values()) if tags and updating and matches else {}
    room = _contacts_room(plan) if plan.record_type == RecordType.CONTACT else None
    update_permission = f"crm.{plan.record_type}.update"

    creates: list[_New] = []
    pending: dict[str, _New] = {}
    updates: dict[int, _Change] = {}
    for row in rows:
        values = dict(row.values)
        if row.company:
            company_id = company_ids.get(row.company.lower())
            if company_id is None:
                outcome.fail(row, ("company", "unknown_company", "No such company, and you may not create one."))
                continue
            values["company_id"] = company_id
        owner_id = values.get("owner_id")
        if owner_id not in (None, plan.actor_id) and not can_reach(plan.access, update_permission, owner_id=owner_id):
            outcome.fail(row, ("owner", "out_of_scope", "You may not give records to this member."))
            continue
        row_tags = {tags[tag.lower()].pk for tag in row.tags or [] if tag.lower() in tags}
        new = pending.get(row.key) if dedupes and row.key else None
        match = matches.get(row.key) if dedupes and row.key and new is None else None

        if new is None and match is None:
            if room is not None and room <= 0:
                outcome.fail(row, ("", "plan_limit_reached", "Your plan's contacts limit is reached."))
                continue
            instance = _new_instance(plan, values, row)
            if isinstance(instance, tuple):
                outcome.fail(row, instance)
                continue
            if room is not None:
                room -= 1
            new = _New(instance, row_tags)
            creates.append(new)
            if row.key:
                pending[row.key] = new
            outcome.created += 1
        elif plan.policy == DedupePolicy.SKIP:
            outcome.skipped += 1
        elif plan.policy == DedupePolicy.CREATE:  # contacts: the e-mail is unique
            outcome.fail(row, ("email", "duplicate_email", "Another contact already has this e-mail address."))
        elif new is not None:  # created earlier in this batch
            changed = _merge(plan, new.instance, values, row, changes={})
            if isinstance(changed, tuple):
                outcome.fail(row, changed)
                continue
            grew = not row_tags <= new.tag_ids
            new.tag_ids |= row_tags
            if changed or grew:
                outcome.updated += 1
            else:
                outcome.skipped += 1
        else:
            if not can_reach(plan.access, update_permission, owner_id=match.owner_id):
                outcome.fail(row, (plan.key_field, "out_of_scope", "A matching record exists that you may not edit."))
                continue
            if (
                plan.record_type == RecordType.LEAD
                and match.status == LeadStatus.CONVERTED
                and values.get("status", match.status) != match.status
            ):
                outcome.fail(row, ("status", "invalid_lead_transition", "The lead is converted."))
                continue
            change = updates.get(match.pk) or _Change(match)
            changed = _merge(plan, match, values, row, changes=change.changes)
            if isinstance(changed, tuple):
                outcome.fail(row, changed)
                continue
            added = row_tags - set(existing_tags.get(match.pk, {})) - change.tag_ids
            change.tag_ids |= added
            updates[match.pk] = change
            if changed or added:
                outcome.updated += 1
            else:
                outcome.skipped += 1

    through = model.tags.through
    links = []
    if creates:
        created = model.objects.bulk_create([new.instance for new in creates])
        links += [
            through(**{f"{name}_id": obj.pk, "tag_id": tag})
            for obj, new in zip(created, creates, strict=True)
            for tag in new.tag_ids
        ]
        events += [_event(plan, f"{name}.created", obj, outbox.snapshot(obj)) for obj in created]
    changed_records = [change for change in updates.values() if change.changes or change.tag_ids]
    if changed_records:
        now = timezone.now()
        for change in changed_records:
            change.record.updated_at = now
            if change.tag_ids:
                before = existing_tags.get(change.record.pk, {})
                change.changes["tags"] = sorted({*before.values(), *(tag_names[tag] for tag in change.tag_ids)})
                links += [through(**{f"{name}_id": change.record.pk, "tag_id": tag}) for tag in change.tag_ids]
        columns = {model._meta.get_field(key).name for change in changed_records for key in change.changes}
        columns.discard("tags")
        model.objects.bulk_update(
            [change.record for change in changed_records], [*sorted(columns), "updated_at"], batch_size=200
        )
        events += [
            _event(
                plan, f"{name}.updated", change.record, _jsonable({"id": change.record.pk, "changes": change.changes})
            )
            for change in changed_records
        ]
    if links:
        through.objects.bulk_create(links, ignore_conflicts=True)
    if events:
        OutboxEvent.objects.bulk_create(events)
        outbox.relay_after_commit()


# --- the errors CSV of a running job ---


class _ErrorLog:
    """One line per problem: row, field, code, message and the row's cells (neutralized, as in every export).
    It grows in a work file while the job runs; lines of batches that did not commit are dropped on resume."""

    def __init__(self, job: ImportJob, header: list[str], *, resume_after_row: int | None):
        self.path = work_dir() / connection.schema_name / f"{job.pk}.errors.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        first_line = [*ERRORS_HEADER, *header]
        if resume_after_row is not None and self.path.exists():
            kept = self.path.with_suffix(".kept")
            with (
                open(self.path, newline="", encoding="utf-8") as source,
                open(kept, "w", newline="", encoding="utf-8") as target,
            ):
                writer = csv.writer(target)
                writer.writerow(first_line)
                for line in csv.reader(source):
                    if line and line[0].isdigit() and int(line[0]) <= resume_after_row:
                        writer.writerow(line)
            os.replace(kept, self.path)
        else:
            with open(self.path, "w", newline="", encoding="utf-8") as target:
                csv.writer(target).writerow(first_line)
        self.file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.writer = csv.writer(self.file)

    def write(self, errors: list[tuple[int, list, list[Problem]]]) -> None:
        for number, cells, problems in sorted(errors, key=lambda error: error[0]):
            shown = [neutralize(cell if isinstance(cell, str) else cell_text(cell)) for cell in cells]
            for field_name, code, message in problems:
                self.writer.writerow([number, field_name, code, neutralize(message), *shown])
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# --- running a job (in the task) ---


@contextlib.contextmanager
def _run_lock(job_id) -> Iterator[bool]:
    """A session advisory lock per job: one runner at a time; released when the runner's connection dies."""
    key = zlib.crc32(f"import:{job_id}".encode()) - 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [IMPORT_LOCK_NAMESPACE, key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [IMPORT_LOCK_NAMESPACE, key])


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _commit_batch(job: ImportJob, plan: _Plan, batch: list, log: _ErrorLog) -> None:
    outcome, valid = _Outcome(), []
    for number, cells in batch:
        result = _clean(plan, number, cells)
        if isinstance(result, list):
            outcome.errors.append((number, cells if isinstance(cells, list) else [], result))
        else:
            valid.append(result)
    with transaction.atomic():
        if valid:
            _apply_batch(plan, valid, outcome)
        log.write(outcome.errors)
        ImportJob.objects.filter(pk=job.pk).update(
            processed_rows=F("processed_rows") + len(batch),
            created_count=F("created_count") + outcome.created,
            updated_count=F("updated_count") + outcome.updated,
            skipped_count=F("skipped_count") + outcome.skipped,
            error_count=F("error_count") + len(outcome.errors),
        )


def import_run(*, job_id) -> ImportJob | None:
    """Process an import job. Safe to run again: a finished job is left alone, a started one resumes after its
    last committed batch, and a job another runner holds is left to it."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.status in _FINISHED:
        return job
    with _run_lock(job.pk) as mine:
        if not mine:
            return job
        job.refresh_from_db()
        if job.status in _FINISHED:
            return job
        if job.status == ImportStatus.PENDING:
            job.status, job.started_at = ImportStatus.RUNNING, timezone.now()
            job.save(update_fields=["status", "started_at"])
        log = None
        try:
            with job.file.open("rb") as binary, contextlib.closing(read_rows(binary, job.file_format)) as rows:
                _number, header_cells = next(rows)
                if isinstance(header_cells, RowProblem):
                    raise _Unreadable("The header row cannot be read.")
                header = header_names(header_cells)
                plan = _plan_for(job, header)
                resume_after = None
                for _ in range(job.processed_rows):
                    resume_after, _cells = next(rows)
                log = _ErrorLog(job, header, resume_after_row=resume_after)
                for batch in _batches(rows, batch_size()):
                    _commit_batch(job, plan, batch, log)
        except (_Unreadable, UnsupportedFile) as exc:
            return _finish(job, log, status=ImportStatus.FAILED, reason=str(exc))
        except (UnicodeDecodeError, StopIteration, FileNotFoundError):
            return _finish(job, log, status=ImportStatus.FAILED, reason="The stored file cannot be read any more.")
        except BaseException:  # transient (the task retries and resumes) or a bug (the task fails the job)
            if log is not None:
                log.close()
            raise
        return _finish(job, log, status=ImportStatus.COMPLETED)


def _finish(job: ImportJob, log: _ErrorLog | None, *, status: str, reason: str = "") -> ImportJob:
    """Publish the errors CSV and close the job."""
    if log is not None:
        log.close()
    job.refresh_from_db()
    if log is not None and job.error_count:
        if job.errors_file:
            job.errors_file.delete(save=False)
        with open(log.path, "rb") as errors:
            job.errors_file.save(f"{connection.schema_name}/{job.pk}-errors.csv", File(errors), save=False)
    job.status, job.finished_at, job.failure_reason = status, timezone.now(), reason[:500]
    job.save(update_fields=["status", "finished_at", "failure_reason", "errors_file"])
    if log is not None:
        log.discard()
    return job


def import_fail(*, job_id, reason: str) -> ImportJob | None:
    """Mark a job that cannot finish as failed (a visible state, never a silent drop)."""
    ImportJob.objects.filter(pk=job_id).exclude(status__in=_FINISHED).update(
        status=ImportStatus.FAILED, failure_reason=reason[:500], finished_at=timezone.now()
    )
    return ImportJob.objects.filter(pk=job_id).first()


def errors_csv_lines(job: ImportJob) -> Iterator[bytes]:
    """The job's errors CSV (only the header when it has none), for download."""
    if job.errors_file:
        with job.errors_file.open("rb") as errors:
            yield from iter(lambda: errors.read(64 * 1024), b"")
        return
    buffer = io.StringIO()
    csv.writer(buffer).writerow(ERRORS_HEADER)
    yield buffer.getvalue().encode()


def example_header(record_type: str) -> list[str]:
    """The fields a file of ``record_type`` can have, as column headers (for templates and docs)."""
    return targets(record_type, custom_fields.definitions(record_type))
