"""Exports of contacts, companies and leads, and of the records other apps register (:func:`register`: deals):
CSV (streamed), XLSX (written row by row to a temporary file) and
PDF (a bounded number of rows).

Memory stays flat whatever the number of rows: rows are streamed from PostgreSQL in chunks of ``CHUNK_SIZE`` as
plain tuples (no model instances), and the CSV is written and sent chunk by chunk. The columns are the fields an
import takes (``crm.imports.targets``), so an exported file imports back without a mapping.

Speed (``bench/export.py``): PostgreSQL renders the CSV's cells (text with formulas neutralized, flags, timestamps
in ISO format, tag names, each custom field's value from the JSON object), so the CSV is PostgreSQL's own
``COPY (query) TO STDOUT`` (byte for byte what ``csv.writer`` writes); the tag names come from one grouped subquery
joined to the rows, not a subquery per row; the query runs without JIT compilation. XLSX and PDF rows are streamed
as one query rather than fetched through a server-side cursor.
XLSX and PDF take typed values, each column with a formatter chosen once per export.

Formula injection: a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would run as
a formula once a spreadsheet opens the file; it is written with a leading single quote (the import drops that
quote again). XLSX has cell types: text is written as string cells, which a spreadsheet never evaluates, so the
value stays as it is (no quote). XLSX date-times carry no offset: they are in :func:`export_time_zone` (the
organization's), named in the column header (``created_at (UTC)``); CSV has ISO 8601 with the offset.

Settings (environment variables, read in ``config.settings``): ``EXPORT_PDF_MAX_ROWS`` (500; more rows: 400
``too_many_rows_for_pdf``) and ``EXPORT_PDF_FONT`` (a TrueType font with wide Unicode coverage; DejaVu Sans where
installed).
"""

from __future__ import annotations

import csv
import datetime
import io
import tempfile
import zoneinfo
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.contrib.postgres.aggregates import StringAgg
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models import F, Func, QuerySet, TextField, Value
from django.db.models.expressions import Expression
from django.db.models.functions import Cast, Coalesce, NullIf
from django.db.models.sql.constants import LOUTER
from django.utils import timezone
from psycopg import pq

from config.api.errors import ValidationFailed
from config.db import connection, native_cursor, transaction_with

from . import custom_fields
from .choices import RecordType
from .imports import CUSTOM_PREFIX
from .imports.files import FORMULA_PREFIXES

CHUNK_SIZE = 2000
CHUNKED_ROWS = pq.version() >= 170000  # libpq's chunked rows mode streams a query; else a server-side cursor
CSV_BOM = "\ufeff"  # spreadsheet applications read UTF-8 only with it; the import accepts it

# (header, value path) per record type; headers are import targets, so a file round-trips.
_COLUMNS: dict[str, list[tuple[str, str]]] = {
    RecordType.CONTACT: [
        ("id", "id"),
        ("first_name", "first_name"),
        ("last_name", "last_name"),
        ("email", "email"),
        ("phone", "phone"),
        ("job_title", "job_title"),
        ("company", "company__name"),
        ("status", "status"),
        ("lifecycle_stage", "lifecycle_stage"),
        ("source", "source"),
        ("do_not_contact", "do_not_contact"),
        ("owner", "owner__email"),
        ("tags", "export_tags"),
    ],
    RecordType.COMPANY: [
        ("id", "id"),
        ("name", "name"),
        ("domain", "domain"),
        ("industry", "industry"),
        ("size", "size"),
        ("phone", "phone"),
        ("street", "street"),
        ("city", "city"),
        ("region", "region"),
        ("postal_code", "postal_code"),
        ("country", "country"),
        ("owner", "owner__email"),
        ("tags", "export_tags"),
    ],
    RecordType.LEAD: [
        ("id", "id"),
        ("name", "name"),
        ("email", "email"),
        ("phone", "phone"),
        ("company_name", "company_name"),
        ("source", "source"),
        ("status", "status"),
        ("score", "score"),
        ("priority", "priority"),
        ("estimated_value", "estimated_value"),
        ("owner", "owner__email"),
        ("tags", "export_tags"),
        ("disqualified_reason", "disqualified_reason"),
        ("converted_at", "converted_at"),
    ],
}
_TRAILING = [("created_at", "created_at"), ("updated_at", "updated_at")]

# The narrower set of columns that fits a landscape page.
_PDF_COLUMNS: dict[str, list[str]] = {
    RecordType.CONTACT: ["first_name", "last_name", "email", "phone", "company", "status", "owner"],
    RecordType.COMPANY: ["name", "domain", "industry", "city", "country", "owner"],
    RecordType.LEAD: ["name", "email", "company_name", "status", "score", "estimated_value", "owner"],
}


def register(record_type: str, *, columns: list[tuple[str, str]], pdf_columns: list[str]) -> None:
    """Export another app's records the same way: ``columns`` as (header, value path), before ``created_at`` and
    ``updated_at``; ``pdf_columns`` the headers that fit a page. An app above crm registers its own at start-up
    (``pipelines.exports``: deals), so crm never imports it."""
    if record_type in _COLUMNS and _COLUMNS[record_type] != columns:
        raise ValueError(f"the export of {record_type} is registered twice with different columns")
    unknown = set(pdf_columns) - {header for header, _path in columns}
    if unknown:
        raise ValueError(f"PDF columns that are not columns: {', '.join(sorted(unknown))}")
    _COLUMNS[record_type] = list(columns)
    _PDF_COLUMNS[record_type] = list(pdf_columns)


class TooManyRowsForPdf(ValidationFailed):
    code = "too_many_rows_for_pdf"
    title = "Too many rows for a PDF; export CSV or XLSX, or narrow the filters."


def pdf_max_rows() -> int:
    return settings.EXPORT_PDF_MAX_ROWS


# What a column holds; it decides how each format writes the column's cells.
TEXT, BOOLEAN, DATETIME, OTHER, CUSTOM = "text", "boolean", "datetime", "other", "custom"
_TAGS = "export_tags"  # the annotation with the tag names


def _kind(model: type[models.Model], path: str) -> str:
    if path == _TAGS:
        return TEXT
    if path == "custom_fields":
        return CUSTOM
    *relations, name = path.split("__")
    for relation in relations:
        model = model._meta.get_field(relation).related_model  # type: ignore[assignment]  # a relation's model
    field = model._meta.get_field(name)
    if isinstance(field, models.BooleanField):
        return BOOLEAN
    if isinstance(field, models.DateTimeField):
        return DATETIME
    if isinstance(field, models.CharField | models.TextField):
        return TEXT
    return OTHER


@contextmanager
def export_transaction(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """The transaction of one export's query, without JIT compilation: past ``jit_above_cost`` PostgreSQL spends
    seconds compiling an export's query, more than running it."""
    with transaction_with(using, jit="off"):
        yield


class Export:
    """The rows of one filtered queryset in a fixed column order: as tuples of typed values (``rows``, for XLSX and
    PDF), and as the query whose columns are the CSV file's cells (``csv_queryset``, for :func:`csv_chunks`)."""

    def __init__(self, queryset: QuerySet, record_type: str):
        self.record_type = record_type
        self.schema_name = connection.schema_name
        definitions = custom_fields.definitions(record_type)
        self.custom_keys = list(definitions)
        base = _COLUMNS[record_type]
        self.header = [header for header, _path in base]
        self.header += [CUSTOM_PREFIX + key for key in self.custom_keys]
        self.header += [header for header, _path in _TRAILING]
        paths = [path for _header, path in base]
        if self.custom_keys:
            paths.append("custom_fields")
        paths += [path for _header, path in _TRAILING]
        self._custom_at = at = len(base) if self.custom_keys else None
        kinds = [_kind(queryset.model, path) for path in paths]
        # A kind per column of the rows as ``rows`` gives them: custom fields spread over their columns.
        self.kinds = kinds if at is None else [*kinds[:at], *[CUSTOM] * len(self.custom_keys), *kinds[at + 1 :]]

        queryset = _with_tag_names(queryset, _TAGS)
        self.queryset = queryset.values_list(*paths)
        # Empty text as NULL: ``COPY``'s CSV writes NULL as an empty cell, as ``csv.writer`` writes "" and ``None``,
        # but an empty string as ``""``. Only text can be empty; other cells are NULL when there is no value.
        expressions: list[Expression | F] = []
        for path, kind in zip(paths, kinds, strict=True):
            if kind == CUSTOM:
                expressions += [_CustomCell(path, key) for key in self.custom_keys]
            elif kind == TEXT:
                expressions.append(NullIf(_csv_expression(path, kind), Value(""), output_field=TextField()))
            else:
                expressions.append(_csv_expression(path, kind))
        cells = {f"export_cell_{i}": expression for i, expression in enumerate(expressions)}
        self.csv_queryset = queryset.annotate(**cells).values_list(*cells)

    def rows(self, *, chunk_size: int = CHUNK_SIZE, limit: int | None = None) -> Iterator[tuple]:
        """Typed values: text, booleans, aware datetimes, numbers, custom field values; ``None`` when empty."""
        return self._expanded(self._fetch(self.queryset, chunk_size=chunk_size, limit=limit))

    def _fetch(self, queryset: QuerySet, *, chunk_size: int, limit: int | None = None) -> Iterator[tuple]:
        if connection.schema_name != self.schema_name:
            raise RuntimeError("the export left its organization's schema")
        if limit is not None:
            queryset = queryset[:limit]
        with export_transaction(using=queryset.db):
            if CHUNKED_ROWS:
                yield from _streamed(queryset, chunk_size=chunk_size)
            else:
                yield from queryset.iterator(chunk_size=chunk_size)

    def _expanded(self, rows: Iterator[tuple]) -> Iterator[tuple]:
        """``rows`` with the ``custom_fields`` object spread over one column per custom field."""
        at, keys = self._custom_at, self.custom_keys
        if at is None:
            yield from rows
            return
        for row in rows:
            values = row[at] or {}
            yield (*row[:at], *[values.get(key) for key in keys], *row[at + 1 :])


def _streamed(queryset: QuerySet, *, chunk_size: int) -> Iterator[tuple]:
    """The rows of ``queryset`` as ``QuerySet.iterator()`` gives them, streamed by psycopg in chunks of
    ``chunk_size`` rows (libpq's chunked rows mode): one query that PostgreSQL plans for all its rows and may run in
    parallel, sending rows while the previous chunk is written, where a server-side cursor is planned for its first
    rows, never runs in parallel and waits for each ``FETCH``. Memory stays flat all the same; a stream left early
    is cancelled (psycopg's ``Cursor.stream``)."""
    compiler = queryset.query.get_compiler(using=queryset.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:  # e.g. ``none()``: no query
        return
    with native_cursor(sql, params, using=queryset.db) as cursor:
        rows = cast(Generator[tuple, None, None], cursor.stream(sql, params, size=chunk_size))  # psycopg's generator
        try:
            yield from compiler.results_iter(results=[rows], tuple_expected=True)  # the fields' converters
        finally:
            rows.close()  # left early: psycopg cancels the query before the transaction ends


# --- the tag names: one grouped subquery joined to the rows ---


class _SubqueryJoin:
    """``LEFT OUTER JOIN (subquery) alias ON alias.column = parent.column`` as an entry of ``Query.alias_map``
    (the protocol of ``django.db.models.sql.datastructures.Join``): the ORM joins tables, not subqueries."""

    join_type = LOUTER
    nullable = True
    filtered_relation = None

    def __init__(self, subquery: QuerySet, *, parent_alias: str, table_alias: str, on: tuple[str, str]):
        self.subquery = subquery
        self.parent_alias = parent_alias
        self.table_alias = self.table_name = table_alias
        self.on = on  # (subquery column, parent column)

    def as_sql(self, compiler, connection) -> tuple[str, tuple]:
        sql, params = self.subquery.query.get_compiler(connection=connection).as_sql()
        qn = connection.ops.quote_name
        column, parent_column = self.on
        alias = qn(self.table_alias)
        on = f"{alias}.{qn(column)} = {qn(self.parent_alias)}.{qn(parent_column)}"
        return f"{self.join_type} ({sql}) {alias} ON ({on})", tuple(params)

    def relabeled_clone(self, change_map: dict[str, str]) -> _SubqueryJoin:
        return _SubqueryJoin(
            self.subquery,
            parent_alias=change_map.get(self.parent_alias, self.parent_alias),
            table_alias=change_map.get(self.table_alias, self.table_alias),
            on=self.on,
        )


class _JoinedColumn(Expression):
    """A column of a ``_SubqueryJoin``."""

    def __init__(self, alias: str, column: str, output_field: models.Field):
        super().__init__(output_field=output_field)
        self.alias, self.column = alias, column

    def as_sql(self, compiler, connection) -> tuple[str, tuple]:
        qn = connection.ops.quote_name
        return f"{qn(self.alias)}.{qn(self.column)}", ()

    def relabeled_clone(self, change_map: Mapping[str, str]) -> _JoinedColumn:
        return _JoinedColumn(change_map.get(self.alias, self.alias), self.column, self.output_field)


def _with_tag_names(queryset: QuerySet, name: str) -> QuerySet:
    """``queryset`` annotated with ``name``: each record's tag names in alphabetical order, joined by ", " ("" for
    none). The names come from one grouped subquery over the tags of the filtered records, joined to the rows:
    PostgreSQL aggregates them in one pass, where a subquery per row cost more than the rest of the query (and
    its estimated cost switched the JIT compiler on)."""
    model = queryset.model
    record_id = f"{model._meta.model_name}_id"
    tagged = model.tags.through.objects.all()
    if queryset.query.has_filters():  # a narrow export aggregates the tags of its own records only
        tagged = tagged.filter(**{f"{record_id}__in": queryset.order_by().values("pk")})
    names = tagged.values(record_id).annotate(names=StringAgg("tag__name", ", ", order_by="tag__name"))
    queryset = queryset.all()
    query = queryset.query
    alias = "export_tag_names"
    query.alias_map[alias] = _SubqueryJoin(  # type: ignore[assignment]  # a join Django compiles like its own
        names.values(record_id, "names"),
        parent_alias=query.get_initial_alias(),
        table_alias=alias,
        on=(record_id, model._meta.pk.column),
    )
    query.alias_refcount[alias] = 1
    return queryset.annotate(
        **{name: Coalesce(_JoinedColumn(alias, "names", TextField()), Value(""), output_field=TextField())}
    )


# --- cell formats ---


# The code points ``neutralize`` looks for at the start of a cell (``ord`` takes one character only: a longer
# prefix fails here, at import, rather than going unnoticed).
_FORMULA_CODE_POINTS = ", ".join(str(ord(prefix)) for prefix in FORMULA_PREFIXES)


class _UtcIsoformat(Func):
    """A timestamp as ``datetime.isoformat()`` writes it in UTC: ``2025-01-31T09:30:00+00:00``, with microseconds
    (``.123400``) only when there are some."""

    template = (
        "replace(to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00'), '.000000', '')"
    )
    output_field = TextField()


def _csv_expression(path: str, kind: str) -> Expression | F:
    """A column's CSV cells, rendered by PostgreSQL: text neutralized, ``true``/``false``, timestamps as
    ``datetime.isoformat()`` in UTC; numbers as they are (``csv.writer`` writes them with ``str``)."""
    column = F(path)
    if kind == TEXT:
        return _Neutralized(column)
    if kind == BOOLEAN:
        return Cast(column, TextField())  # true, false
    if kind == DATETIME:
        return _UtcIsoformat(column)
    return column


def _neutralized(sql: str, params: tuple) -> tuple[str, tuple]:
    """``crm.imports.neutralize`` in SQL, of the text ``sql`` computes: with a leading quote where a spreadsheet would
    run it as a formula. The first character is compared as a code point (``ascii()``: no substring built per
    cell)."""
    return (
        f"CASE WHEN ascii({sql}) IN ({_FORMULA_CODE_POINTS}) THEN %s || {sql} ELSE {sql} END",
        (*params, "'", *params, *params),
    )


class _Neutralized(Func):
    """:func:`_neutralized` of an expression."""

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra_context) -> tuple[str, tuple]:  # type: ignore[override]
        return _neutralized(*compiler.compile(self.source_expressions[0]))


class _CustomCell(Func):
    """One custom field's CSV cells, rendered by PostgreSQL from the JSON object (``custom_fields -> key``) as
    ``csv.writer`` writes the values Python reads from it: text neutralized, ``true``/``false``, numbers as JSON has
    them (as ``str`` writes the numbers ``custom_fields.coerce`` stores: too few digits for an exponent), a list's
    items as ``str`` writes them, joined with ", " and neutralized, an object as JSON; NULL (an empty cell) for no
    value, a JSON ``null`` or empty text."""

    output_field = TextField()

    def __init__(self, path: str, key: str):
        super().__init__(F(path))
        self.key = key

    def as_sql(self, compiler, connection, **extra_context) -> tuple[str, tuple]:  # type: ignore[override]
        column, column_params = compiler.compile(self.source_expressions[0])
        value, value_params = f"({column} -> %s)", (*column_params, self.key)
        text, text_params = f"({column} ->> %s)", value_params
        items = (
            "(SELECT string_agg(CASE jsonb_typeof(item) WHEN 'string' THEN item #>> '{}' "
            "WHEN 'boolean' THEN initcap(item::text) WHEN 'null' THEN 'None' ELSE item::text END, ', ' ORDER BY n) "
            f"FROM jsonb_array_elements({value}) WITH ORDINALITY AS list(item, n))"
        )
        string_sql, string_params = _neutralized(text, text_params)
        list_sql, list_params = _neutralized(items, value_params)
        return (
            f"CASE jsonb_typeof({value}) WHEN 'string' THEN NULLIF({string_sql}, '') "
            f"WHEN 'array' THEN NULLIF({list_sql}, '') WHEN 'object' THEN {value}::text "
            f"WHEN 'null' THEN NULL ELSE {text} END",
            (*value_params, *string_params, *list_params, *value_params, *text_params),
        )


def csv_chunks(export: Export, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The CSV file in pieces of ``chunk_size`` rows (the last one shorter), a BOM and the header first: the rows as
    PostgreSQL writes them (``COPY (query) TO STDOUT`` in CSV), passed on as they come. Every cell, custom fields'
    too, is rendered by the query already, so Python only joins lines. The lines end as ``csv.writer``'s (CRLF); the
    quoting is the same (a cell with a comma, a quote or a line break is quoted, its quotes doubled)."""
    buffer = io.StringIO()
    buffer.write(CSV_BOM)
    csv.writer(buffer).writerow(export.header)
    head = buffer.getvalue().encode()
    if connection.schema_name != export.schema_name:
        raise RuntimeError("the export left its organization's schema")
    queryset = export.csv_queryset
    compiler = queryset.query.get_compiler(using=queryset.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:  # e.g. ``none()``: no query
        yield head
        return
    sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"
    # Each line goes into one buffer as it comes: a list of a piece's lines kept thousands of objects alive at once,
    # and the garbage collector's full collections walked them (``config.memory``), 0.3 s per 100,000 rows.
    data, count = bytearray(head), 0
    with export_transaction(using=queryset.db), native_cursor(sql, params, using=queryset.db) as cursor:
        with cursor.copy(sql, params) as copied:  # left early: psycopg cancels the query
            for line in copied:  # one row, ending with "\n"
                data += line[:-1]
                data += b"\r\n"
                count += 1
                if count == chunk_size:
                    yield bytes(data)
                    data.clear()
                    count = 0
    yield bytes(data)


def export_time_zone() -> datetime.tzinfo:
    """The zone of an export's date-times where the format has no offset (XLSX): the organization's
    (``Organization.time_zone``), else the deployment's ``TIME_ZONE`` (UTC unless set)."""
    name = getattr(getattr(connection, "tenant", None), "time_zone", None)
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass  # a zone this system no longer knows: the deployment's
    return timezone.get_default_timezone()


def xlsx_header(export: Export, zone: datetime.tzinfo) -> list[str]:
    """The header with the zone named on date-time columns (``created_at (UTC)``): a spreadsheet date-time carries
    no offset. An import ignores these columns (they are not fields one imports)."""
    return [
        f"{name} ({zone})" if kind == DATETIME else name for name, kind in zip(export.header, export.kinds, strict=True)
    ]


def _xlsx_cells(kinds: Iterable[str], sheet, zone: datetime.tzinfo) -> list[Callable[[Any], Any]]:
    """One formatter per column, chosen once per export. Text is always a string cell, so nothing is evaluated:
    openpyxl would write ``=…`` as a formula and ``#N/A`` as an error; those are written as string cells, with
    Excel's quote prefix on text that starts like a formula, so editing the cell keeps it text. (The leading
    apostrophe of the CSV is for CSV only: in a workbook it would be part of the value.)"""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE

    def text(value: str | None) -> Any:
        if value is None:
            return None
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if not value.startswith(FORMULA_PREFIXES) and value not in ERROR_CODES:
            return value  # openpyxl types it as a string already
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        if value.startswith(FORMULA_PREFIXES):
            cell.quotePrefix = True
        return cell

    def moment(value: datetime.datetime | None) -> datetime.datetime | None:
        return None if value is None else value.astimezone(zone).replace(tzinfo=None)  # the zone is in the header

    def flag(value: bool | None) -> bool | None:
        return value

    def other(value: Any) -> Any:  # numbers, and custom field values (JSON)
        if isinstance(value, str):
            return text(value)
        if isinstance(value, list):
            return text(", ".join(map(str, value)))
        if isinstance(value, Decimal):
            return float(value)
        return value

    by_kind: dict[str, Callable[[Any], Any]] = {TEXT: text, DATETIME: moment, BOOLEAN: flag}
    return [by_kind.get(kind, other) for kind in kinds]


def xlsx_file(export: Export, *, sheet_title: str) -> IO[bytes]:
    """A workbook written row by row (openpyxl's write-only mode) to a temporary file, rewound."""
    from openpyxl import Workbook

    zone = export_time_zone()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    sheet.append(xlsx_header(export, zone))
    cells = _xlsx_cells(export.kinds, sheet, zone)
    for row in export.rows():
        sheet.append([cell(value) for cell, value in zip(cells, row, strict=True)])
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 (the response closes it)
    workbook.save(target)
    target.seek(0)
    return target


def _pdf_font() -> str | None:
    path = settings.EXPORT_PDF_FONT
    return path if path and Path(path).is_file() else None


def pdf_bytes(export: Export, *, title: str) -> bytes:
    """A landscape table of at most ``EXPORT_PDF_MAX_ROWS`` rows; refuses more rather than cutting silently."""
    from fpdf import FPDF

    limit = pdf_max_rows()
    zone = export_time_zone()
    rows = list(export.rows(limit=limit + 1))
    if len(rows) > limit:
        raise TooManyRowsForPdf(f"A PDF holds at most {limit:,} rows; this export has more.", extra={"max_rows": limit})
    wanted = _PDF_COLUMNS[export.record_type]
    positions = [export.header.index(name) for name in wanted]
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    font = _pdf_font()
    if font:
        pdf.add_font("Export", fname=font)
        pdf.add_font("Export", style="B", fname=font)  # headings: the same face
        family = "Export"
    else:  # the core font is Latin-1 only
        family = "Helvetica"
    pdf.set_auto_page_break(auto=True, margin=10)
    pdf.add_page()
    pdf.set_font(family, size=12)
    pdf.cell(text=_pdf_text(title, unicode=bool(font), zone=zone), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=7)
    with pdf.table(text_align="LEFT", line_height=4, first_row_as_headings=True, repeat_headings=1) as table:
        heading = table.row()
        for name in wanted:
            heading.cell(name.replace("_", " "))
        for row in rows:
            line = table.row()
            for position in positions:
                line.cell(_pdf_text(row[position], unicode=bool(font), zone=zone))
    return bytes(pdf.output())


def _pdf_text(value: Any, *, unicode: bool, zone: datetime.tzinfo = datetime.UTC) -> str:
    """A cell as shown on paper: values as they are (a PDF runs no formulas), date-times in ``zone``."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ", ".join(map(str, value))
    elif isinstance(value, datetime.datetime):
        text = value.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    else:
        text = str(value)
    return text if unicode else text.encode("latin-1", "replace").decode("latin-1")
