"""Exports of contacts, companies and leads: CSV (streamed), XLSX (written row by row to a temporary file) and
PDF (a bounded number of rows).

Memory stays flat whatever the number of rows: rows come from a server-side cursor in chunks of ``CHUNK_SIZE``
as plain tuples (no model instances), and the CSV is written and sent chunk by chunk. The columns are the fields
an import takes (``crm.imports.targets``), so an exported file imports back without a mapping.

Formula injection: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would run
as a formula in a spreadsheet; it is written with a leading single quote in every export (the import drops that
quote again). Settings: ``EXPORT_PDF_MAX_ROWS`` (500; more rows: 400 ``too_many_rows_for_pdf``) and
``EXPORT_PDF_FONT`` (a TrueType font with wide Unicode coverage; DejaVu Sans where installed).
"""

from __future__ import annotations

import csv
import datetime
import io
import tempfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import OuterRef, QuerySet

from config.api.errors import ValidationFailed

from . import custom_fields
from .choices import RecordType
from .imports import CUSTOM_PREFIX, neutralize

CHUNK_SIZE = 2000
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


class TooManyRowsForPdf(ValidationFailed):
    code = "too_many_rows_for_pdf"
    title = "Too many rows for a PDF; export CSV or XLSX, or narrow the filters."


def pdf_max_rows() -> int:
    return int(getattr(settings, "EXPORT_PDF_MAX_ROWS", 500))


class Export:
    """The rows of one filtered queryset, as tuples of cell values in a fixed column order."""

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
        through = queryset.model.tags.through
        model_name = queryset.model._meta.model_name
        tag_names = through.objects.filter(**{f"{model_name}_id": OuterRef("pk")}).order_by("tag__name")
        self.queryset = queryset.annotate(export_tags=ArraySubquery(tag_names.values("tag__name"))).values_list(*paths)
        self._custom_at = len(base) if self.custom_keys else None

    def rows(self, *, chunk_size: int = CHUNK_SIZE, limit: int | None = None) -> Iterator[tuple]:
        if connection.schema_name != self.schema_name:
            raise RuntimeError("the export left its organization's schema")
        queryset = self.queryset if limit is None else self.queryset[:limit]
        at, keys = self._custom_at, self.custom_keys
        for row in queryset.iterator(chunk_size=chunk_size):
            if at is None:
                yield row
            else:
                values = row[at] or {}
                yield (*row[:at], *(values.get(key) for key in keys), *row[at + 1 :])


# --- cell formats ---


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralize(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, list):
        return neutralize(", ".join(map(str, value)))
    return value


def csv_chunks(export: Export, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The CSV file in pieces of about ``chunk_size`` rows: a BOM and the header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(CSV_BOM)
    writer.writerow(export.header)
    pending = 0
    for row in export.rows(chunk_size=chunk_size):
        writer.writerow([_csv_cell(value) for value in row])
        pending += 1
        if pending >= chunk_size:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode()


def _xlsx_cell_factory() -> Callable[[Any], Any]:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: Any) -> Any:
        if isinstance(value, str):
            return neutralize(ILLEGAL_CHARACTERS_RE.sub("", value))
        if isinstance(value, list):
            return neutralize(ILLEGAL_CHARACTERS_RE.sub("", ", ".join(map(str, value))))
        if isinstance(value, datetime.datetime):
            return value.astimezone(datetime.UTC).replace(tzinfo=None)  # workbooks have no time zones: UTC
        if isinstance(value, Decimal):
            return float(value)
        return value

    return cell


def xlsx_file(export: Export, *, sheet_title: str) -> tempfile.SpooledTemporaryFile:
    """A workbook written row by row (openpyxl's write-only mode) to a temporary file, rewound."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    sheet.append(export.header)
    cell = _xlsx_cell_factory()
    for row in export.rows():
        sheet.append([cell(value) for value in row])
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 (the response closes it)
    workbook.save(target)
    target.seek(0)
    return target


def _pdf_font() -> str | None:
    path = getattr(settings, "EXPORT_PDF_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    return path if path and Path(path).is_file() else None


def pdf_bytes(export: Export, *, title: str) -> bytes:
    """A landscape table of at most ``EXPORT_PDF_MAX_ROWS`` rows; refuses more rather than cutting silently."""
    from fpdf import FPDF

    limit = pdf_max_rows()
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
    pdf.cell(text=_pdf_text(title, unicode=bool(font)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=7)
    with pdf.table(text_align="LEFT", line_height=4, first_row_as_headings=True, repeat_headings=1) as table:
        heading = table.row()
        for name in wanted:
            heading.cell(name.replace("_", " "))
        for row in rows:
            line = table.row()
            for position in positions:
                line.cell(_pdf_text(row[position], unicode=bool(font)))
    return bytes(pdf.output())


def _pdf_text(value: Any, *, unicode: bool) -> str:
    """A cell as shown on paper: values as they are (a PDF runs no formulas)."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ", ".join(map(str, value))
    elif isinstance(value, datetime.datetime):
        text = value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    else:
        text = str(value)
    return text if unicode else text.encode("latin-1", "replace").decode("latin-1")
