"""Exports of contacts, companies and leads: CSV streamed, XLSX, PDF; filters, own scope, formula injection."""

from __future__ import annotations

import csv
import datetime
import gc
import io
import zipfile
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from openpyxl import load_workbook

from crm import exports
from crm.choices import CustomFieldType
from crm.imports import neutralize
from crm.models import Company, Contact, CustomField, Lead, Tag

from ..conftest import client_for
from ..problems import field_error
from .fixtures.transfer import csv_bytes, csv_dicts, csv_rows, streamed, upload

pytestmark = pytest.mark.django_db

FORMULA = "=cmd|' /C calc'!A0"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.IMPORT_WORK_DIR = str(tmp_path / "work")


@pytest.fixture
def leads_a(org_a, owner_a, in_tenant):
    with in_tenant(org_a):
        vip = Tag.objects.create(name="vip")
        rows = [
            Lead.objects.create(name="Ann", email="ann@example.test", status="new", score=10, owner_id=owner_a.pk),
            Lead.objects.create(name="Bob", email="bob@example.test", status="contacted", owner_id=owner_a.pk),
            Lead.objects.create(name="Cid", email="cid@example.test", status="new", estimated_value="99.50"),
        ]
        rows[0].tags.add(vip, Tag.objects.create(name="alpha"))
    return rows


def test_csv_export_streams_the_filtered_list(as_owner_a, leads_a, owner_a):
    response = as_owner_a.get("/api/v1/exports/leads/?format=csv&status=new&ordering=name")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    content = streamed(response)
    assert content.startswith("\ufeff".encode())
    rows = csv_dicts(content)
    assert [row["name"] for row in rows] == ["Ann", "Cid"]
    assert rows[0]["owner"] == owner_a.email
    assert rows[0]["tags"] == "alpha, vip"
    assert (rows[0]["score"], rows[1]["estimated_value"], rows[1]["owner"]) == ("10", "99.50", "")
    assert list(rows[0])[:3] == ["id", "name", "email"]


def test_search_and_custom_field_filters_apply(as_owner_a, org_a, in_tenant, leads_a):
    with in_tenant(org_a):
        CustomField.objects.create(record_type="lead", key="region", label="Region", type=CustomFieldType.TEXT)
        Lead.objects.filter(pk=leads_a[1].pk).update(custom_fields={"region": "EMEA"})

    by_search = csv_dicts(streamed(as_owner_a.get("/api/v1/exports/leads/?search=cid")))
    by_custom = csv_dicts(streamed(as_owner_a.get("/api/v1/exports/leads/?cf_region=EMEA")))

    assert [row["name"] for row in by_search] == ["Cid"]
    assert [(row["name"], row["custom_fields.region"]) for row in by_custom] == [("Bob", "EMEA")]


@pytest.mark.parametrize("streamed_query", [True, False], ids=["chunked rows", "server-side cursor"])
def test_the_csv_is_produced_in_chunks(org_a, in_tenant, monkeypatch, streamed_query):
    monkeypatch.setattr(exports, "CHUNKED_ROWS", streamed_query and exports.CHUNKED_ROWS)
    with in_tenant(org_a):
        Contact.objects.bulk_create([Contact(first_name=f"P{i:02}", email=f"p{i}@example.test") for i in range(5)])
        chunks = list(exports.csv_chunks(exports.Export(Contact.objects.order_by("pk"), "contact"), chunk_size=2))

    assert len(chunks) == 3  # 2 + 2 + 1 (with the header) rows
    rows = csv_rows(b"".join(chunks))
    assert rows[0][:4] == ["id", "first_name", "last_name", "email"]
    assert [row[1] for row in rows[1:]] == ["P00", "P01", "P02", "P03", "P04"]


def test_a_csv_piece_is_built_without_keeping_an_object_per_line_alive(org_a, in_tenant, gc_collections):
    """Thousands of live objects per piece made the garbage collector run dozens of times a piece (and, in a
    long export, walk every object of the process): the lines go into one buffer as they come."""
    with in_tenant(org_a):
        Contact.objects.bulk_create([Contact(email=f"p{i}@example.test") for i in range(3_000)])
        chunks = exports.csv_chunks(exports.Export(Contact.objects.order_by("pk"), "contact"), chunk_size=3_000)
        gc.set_threshold(700, 10, 10)
        gc.collect()
        gc_collections.clear()
        piece = next(chunks)
        during = len(gc_collections)
        chunks.close()

    assert piece.count(b"\r\n") == 3_001  # the header and every row
    assert during < 3  # a list of the lines: 8 or more


def test_csv_cells_are_written_as_python_writes_them(org_a, owner_a, in_tenant):
    """PostgreSQL renders the cells; they are what ``csv.writer`` wrote from the values before."""
    with in_tenant(org_a):
        CustomField.objects.create(record_type="contact", key="tier", label="Tier", type=CustomFieldType.TEXT)
        CustomField.objects.create(record_type="contact", key="seats", label="Seats", type=CustomFieldType.NUMBER)
        CustomField.objects.create(record_type="contact", key="vip", label="VIP", type=CustomFieldType.BOOLEAN)
        acme = Company.objects.create(name="@Acme, Inc.")
        ada = Contact.objects.create(
            first_name="Ada",
            last_name='-Love "lace"',
            email="ada@example.test",
            phone="+44 20 7946 0000",
            job_title="\tTabbed\nline",
            company=acme,
            do_not_contact=True,
            owner_id=owner_a.pk,
            custom_fields={"tier": "=gold", "seats": 2.5, "vip": False},
        )
        ada.tags.add(*(Tag.objects.create(name=name) for name in ("zeta", "=evil", "Alpha")))
        bare = Contact.objects.create(first_name="Bare", email="bare@example.test")
        Contact.objects.filter(pk=bare.pk).update(
            created_at=datetime.datetime(2025, 1, 31, 9, 30, tzinfo=datetime.UTC),
            updated_at=datetime.datetime(2025, 1, 31, 9, 30, 0, 120, tzinfo=datetime.UTC),
        )
        ada.refresh_from_db()
        bare.refresh_from_db()
        content = b"".join(exports.csv_chunks(exports.Export(Contact.objects.order_by("pk"), "contact")))

    header, first, second = csv_rows(content)
    assert header[-5:] == ["custom_fields.tier", "custom_fields.seats", "custom_fields.vip", "created_at", "updated_at"]
    assert dict(zip(header, first, strict=True)) == {
        "id": str(ada.pk),
        "first_name": "Ada",
        "last_name": '\'-Love "lace"',
        "email": "ada@example.test",
        "phone": "'+44 20 7946 0000",
        "job_title": "'\tTabbed\nline",
        "company": "'@Acme, Inc.",
        "status": ada.status,
        "lifecycle_stage": ada.lifecycle_stage,
        "source": "",
        "do_not_contact": "true",
        "owner": owner_a.email,
        "tags": "'=evil, Alpha, zeta",
        "custom_fields.tier": "'=gold",
        "custom_fields.seats": "2.5",
        "custom_fields.vip": "false",
        "created_at": ada.created_at.astimezone(datetime.UTC).isoformat(),
        "updated_at": ada.updated_at.astimezone(datetime.UTC).isoformat(),
    }
    assert (second[header.index("company")], second[header.index("owner")], second[header.index("tags")]) == ("",) * 3
    assert second[header.index("do_not_contact")] == "false"
    assert second[-2:] == ["2025-01-31T09:30:00+00:00", "2025-01-31T09:30:00.000120+00:00"]


def test_a_narrow_export_lists_every_tag_of_its_records(as_owner_a, leads_a):
    rows = csv_dicts(streamed(as_owner_a.get("/api/v1/exports/leads/?tags=vip")))

    assert [(row["name"], row["tags"]) for row in rows] == [("Ann", "alpha, vip")]


def test_a_csv_left_early_cancels_its_query(org_a, in_tenant):
    with in_tenant(org_a):
        Contact.objects.bulk_create([Contact(first_name=f"P{i:02}", email=f"p{i}@example.test") for i in range(5)])
        chunks = exports.csv_chunks(exports.Export(Contact.objects.order_by("pk"), "contact"), chunk_size=2)
        assert next(chunks).count(b"\n") == 3
        chunks.close()  # the client went away

        assert Contact.objects.count() == 5  # the connection is usable, in the same transaction


def test_the_export_query_runs_without_jit(org_a, in_tenant):
    with in_tenant(org_a), exports.export_transaction(), connection.cursor() as cursor:
        cursor.execute("SHOW jit")  # SET LOCAL: until the export's transaction ends

        assert cursor.fetchone()[0] == "off"


def test_a_sales_rep_exports_only_their_own_records(org_a, owner_a, member, in_tenant):
    rep, client = member(org_a, "sales_rep")
    with in_tenant(org_a):
        Contact.objects.create(first_name="Mine", email="mine@example.test", owner_id=rep.pk)
        Contact.objects.create(first_name="Theirs", email="theirs@example.test", owner_id=owner_a.pk)
        Company.objects.create(name="Their company", owner_id=owner_a.pk)

    contacts = csv_dicts(streamed(client.get("/api/v1/exports/contacts/")))
    companies = csv_dicts(streamed(client.get("/api/v1/exports/companies/")))
    everyone = csv_dicts(streamed(client_for(owner_a, org_a).get("/api/v1/exports/contacts/")))

    assert [row["first_name"] for row in contacts] == ["Mine"]
    assert companies == []
    assert {row["first_name"] for row in everyone} == {"Mine", "Theirs"}


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_roles_without_the_export_permission_get_403(org_a, member, role):
    _user, client = member(org_a, role)
    response = client.get("/api/v1/exports/contacts/?format=csv")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert (response.json()["code"], response.json()["permission"]) == ("permission_denied", "crm.contact.export")


def test_another_organizations_records_are_not_exported(as_owner_a, org_b, in_tenant, leads_a):
    with in_tenant(org_b):
        Lead.objects.create(name="Org B lead", email="b@example.test")

    names = {row["name"] for row in csv_dicts(streamed(as_owner_a.get("/api/v1/exports/leads/")))}

    assert names == {"Ann", "Bob", "Cid"}


def test_an_imported_formula_is_stored_as_given_and_neutralized_in_every_export(
    as_owner_a, org_a, in_tenant, django_capture_on_commit_callbacks
):
    content = csv_bytes([["first_name", "last_name", "email"], [FORMULA, "+SUM(A1)", "formula@example.test"]])
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(as_owner_a, content).status_code == 202
    with in_tenant(org_a):
        contact = Contact.objects.get(email="formula@example.test")
        assert (contact.first_name, contact.last_name) == (FORMULA, "+SUM(A1)")

    row = csv_dicts(streamed(as_owner_a.get("/api/v1/exports/contacts/?format=csv")))[0]
    assert (row["first_name"], row["last_name"]) == ("'" + FORMULA, "'+SUM(A1)")

    response = as_owner_a.get("/api/v1/exports/contacts/?format=xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(streamed(response))).active
    header = [cell.value for cell in sheet[1]]
    first_name = sheet.cell(row=2, column=header.index("first_name") + 1)
    assert (first_name.value, first_name.data_type) == (FORMULA, "s")  # a string cell: never evaluated


def test_xlsx_export_imports_back_unchanged(as_owner_a, org_a, owner_a, in_tenant, django_capture_on_commit_callbacks):
    with in_tenant(org_a):
        CustomField.objects.create(record_type="contact", key="seats", label="Seats", type=CustomFieldType.NUMBER)
        acme = Company.objects.create(name="Acme")
        ada = Contact.objects.create(
            first_name="Ada",
            last_name="Lovelace",
            email="ada@example.test",
            phone="+44 20 7946 0000",
            company=acme,
            do_not_contact=True,
            owner_id=owner_a.pk,
            custom_fields={"seats": 12},
        )
        ada.tags.add(Tag.objects.create(name="math"))
        Contact.objects.create(first_name="=1+1", email="sum@example.test", owner_id=owner_a.pk)

    exported = streamed(as_owner_a.get("/api/v1/exports/contacts/?format=xlsx"))
    sheet = load_workbook(io.BytesIO(exported)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][:4] == ["id", "first_name", "last_name", "email"]
    assert "custom_fields.seats" in rows[0]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(as_owner_a, exported, name="contacts.xlsx", policy="update")

    body = as_owner_a.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert response.json()["mapping"]["custom_fields.seats"] == "custom_fields.seats"
    assert (body["status"], body["total_rows"], body["skipped_count"], body["updated_count"]) == ("completed", 2, 2, 0)
    assert body["error_count"] == 0
    with in_tenant(org_a):
        assert Contact.objects.count() == 2
        assert Contact.objects.get(email="sum@example.test").first_name == "=1+1"


def _xlsx_rows(content: bytes) -> tuple[list[str], list[dict]]:
    sheet = load_workbook(io.BytesIO(content)).active
    header = [cell.value for cell in sheet[1]]
    return header, [dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2)]


def test_xlsx_text_cells_are_typed_as_text_not_prefixed(as_owner_a, org_a, owner_a, in_tenant):
    """The apostrophe defence is for CSV: in a workbook it showed up in the value (``'+1 555 0100``)."""
    with in_tenant(org_a):
        CustomField.objects.create(record_type="contact", key="tier", label="Tier", type=CustomFieldType.TEXT)
        Contact.objects.create(
            first_name="=1+1",
            last_name="#N/A",
            email="ada@example.test",
            phone="+1 555 0100",
            job_title="-lead",
            owner_id=owner_a.pk,
            custom_fields={"tier": "@gold"},
        )

    response = as_owner_a.get("/api/v1/exports/contacts/?format=xlsx")
    content = streamed(response)
    _header, [row] = _xlsx_rows(content)

    cells = {name: row[name] for name in ("first_name", "last_name", "phone", "job_title", "custom_fields.tier")}
    assert {name: cell.value for name, cell in cells.items()} == {
        "first_name": "=1+1",
        "last_name": "#N/A",
        "phone": "+1 555 0100",
        "job_title": "-lead",
        "custom_fields.tier": "@gold",
    }
    assert {cell.data_type for cell in cells.values()} == {"s"}
    assert all(cells[name].quotePrefix for name in ("first_name", "phone", "job_title", "custom_fields.tier"))
    with zipfile.ZipFile(io.BytesIO(content)) as workbook:
        assert "<f>" not in workbook.read("xl/worksheets/sheet1.xml").decode()  # no formula in the file


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_xlsx_date_times_are_in_the_time_zone_named_in_the_header(as_owner_a, org_a, in_tenant, settings, zone):
    """Organizations have no time zone of their own: the deployment's TIME_ZONE, named in the header."""
    settings.TIME_ZONE = zone
    stamp = datetime.datetime(2025, 1, 31, 14, 30, tzinfo=datetime.UTC)
    with in_tenant(org_a):
        lead = Lead.objects.create(name="Ada", converted_at=stamp)
        Lead.objects.filter(pk=lead.pk).update(created_at=stamp, updated_at=stamp)

    header, [row] = _xlsx_rows(streamed(as_owner_a.get("/api/v1/exports/leads/?format=xlsx")))

    names = [f"converted_at ({zone})", f"created_at ({zone})", f"updated_at ({zone})"]
    assert [name for name in header if "_at" in name] == names
    local = stamp.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    assert [row[name].value for name in names] == [local] * 3
    assert row["name"].value == "Ada"


@pytest.mark.parametrize("font", ["default", ""], ids=["unicode font", "core font"])
def test_pdf_export_is_bounded(as_owner_a, org_a, in_tenant, leads_a, settings, font):
    if font != "default":
        settings.EXPORT_PDF_FONT = font
    with in_tenant(org_a):
        Lead.objects.filter(pk=leads_a[1].pk).update(name="Zoë 李 Ωmega", status="new")
    response = as_owner_a.get("/api/v1/exports/leads/?format=pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")

    settings.EXPORT_PDF_MAX_ROWS = 2
    refused = as_owner_a.get("/api/v1/exports/leads/?format=pdf")
    assert refused.status_code == 400
    assert (refused.json()["code"], refused.json()["max_rows"]) == ("too_many_rows_for_pdf", 2)
    assert as_owner_a.get("/api/v1/exports/leads/?format=pdf&search=ann").status_code == 200


def test_an_unknown_format_is_400(as_owner_a):
    response = as_owner_a.get("/api/v1/exports/companies/?format=docx")

    assert response.status_code == 400
    assert field_error(response)["code"] == "unsupported_format"


def test_export_costs_a_constant_number_of_queries(as_owner_a, org_a, in_tenant, django_assert_max_num_queries):
    with in_tenant(org_a):
        tags = Tag.objects.bulk_create([Tag(name=f"t{i}") for i in range(3)])
        for i in range(30):
            contact = Contact.objects.create(
                first_name=f"C{i}", email=f"c{i}@example.test", company=Company.objects.create(name=f"Co{i}")
            )
            contact.tags.add(*tags)
    as_owner_a.get("/api/v1/exports/contacts/")  # warm the authorization cache

    with django_assert_max_num_queries(6):
        rows = csv_dicts(streamed(as_owner_a.get("/api/v1/exports/contacts/")))

    assert len(rows) == 30
    assert rows[0]["tags"] == "t0, t1, t2"


def _written_by_python(export: exports.Export) -> bytes:
    """The CSV that ``csv.writer`` writes from the export's typed values (what the XLSX and PDF get): text
    neutralized, ``true``/``false``, date-times as ``isoformat()`` in UTC, a list's items joined with ", "."""

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime.datetime):
            return value.astimezone(datetime.UTC).isoformat()
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        return neutralize(value) if isinstance(value, str) else value

    buffer = io.StringIO()
    buffer.write(exports.CSV_BOM)
    writer = csv.writer(buffer)
    writer.writerow(export.header)
    writer.writerows([cell(value) for value in row] for row in export.rows())
    return buffer.getvalue().encode()


def test_a_csv_copied_by_postgresql_is_the_one_python_writes(org_a, owner_a, in_tenant):
    """PostgreSQL renders every cell, custom fields' too: byte for byte what ``csv.writer`` writes of the values."""
    with in_tenant(org_a):
        for key, kind in [("tier", "TEXT"), ("seats", "NUMBER"), ("vip", "BOOLEAN"), ("since", "DATE")]:
            CustomField.objects.create(record_type="contact", key=key, label=key, type=getattr(CustomFieldType, kind))
        CustomField.objects.create(
            record_type="contact", key="plan", label="Plan", type=CustomFieldType.CHOICE, choices=['Pro, "x"', "=1"]
        )
        acme = Company.objects.create(name="@Acme, Inc.")
        ada = Contact.objects.create(
            first_name="Ada",
            last_name='-Love "lace"',
            email="ada@example.test",
            phone="+44 20 7946 0000",
            job_title="\tTabbed\nline\r\nend",
            company=acme,
            do_not_contact=True,
            owner_id=owner_a.pk,
            custom_fields={
                "tier": "=gold\nline",
                "seats": 2.5,
                "vip": False,
                "since": "2024-02-29",
                "plan": 'Pro, "x"',
            },
        )
        ada.tags.add(*(Tag.objects.create(name=name) for name in ("zeta", "=evil", "Alpha, Beta")))
        Contact.objects.create(first_name="Bare", last_name=" ", email="bare@example.test")
        Contact.objects.create(
            first_name="\\.",
            last_name="Ünïcødé ✓",
            email="u@example.test",
            custom_fields={"tier": "", "seats": 12345678901.1234, "vip": True, "plan": "=1", "since": None},
        )
        Contact.objects.create(email="n@example.test", custom_fields={"seats": -0.0001, "tier": "-"})
        Contact.objects.create(email="i@example.test", custom_fields={"seats": 3, "tier": ["=a", 2, True, None, "b"]})
        export = exports.Export(Contact.objects.order_by("pk"), "contact")
        copied = list(exports.csv_chunks(export, chunk_size=2))
        written = _written_by_python(export)

    assert b"".join(copied) == written
    assert [piece.count(b"\r\n") for piece in copied] == [4, 2, 1]  # the header, a line break in a cell, rows
    assert copied[0].startswith(exports.CSV_BOM.encode())
    assert csv_rows(written)[5][-7:-2] == ["'=a, 2, True, None, b", "3", "", "", ""]


def test_a_custom_field_holding_an_object_is_written_as_json(org_a, in_tenant):
    """The product stores text, numbers, dates and flags; an object (from another tool's data) is its JSON."""
    with in_tenant(org_a):
        CustomField.objects.create(record_type="contact", key="tier", label="Tier", type=CustomFieldType.TEXT)
        Contact.objects.create(email="o@example.test", custom_fields={"tier": {"level": "=1", "n": [1, 2]}})
        content = b"".join(exports.csv_chunks(exports.Export(Contact.objects.all(), "contact")))

    header, row = csv_rows(content)
    assert row[header.index("custom_fields.tier")] == '{"n": [1, 2], "level": "=1"}'
