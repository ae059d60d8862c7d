"""The deals export (``/exports/deals/``): CSV streamed, XLSX, PDF, as crm's exports; the deal list's filters,
search and ordering; own scope; formula injection; a constant number of queries."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from crm.choices import CustomFieldType
from crm.models import Company, Contact, CustomField, Tag
from pipelines.models import Deal

from ..conftest import client_for
from ..crm.fixtures.transfer import csv_dicts, streamed

pytestmark = pytest.mark.django_db

URL = "/api/v1/exports/deals/"


@pytest.fixture
def deals_a(org_a, owner_a, in_tenant, make_deal, stages_a):
    with in_tenant(org_a):
        acme = Company.objects.create(name="Acme")
        ada = Contact.objects.create(first_name="Ada", email="ada@acme.test", company=acme)
        vip = Tag.objects.create(name="vip")
    big = make_deal(org_a, owner=owner_a, title="Big", amount="5000.50", company=acme, contact=ada)
    small = make_deal(org_a, title="Small", amount="10", expected_close_date=datetime.date(2027, 1, 31))
    lost = make_deal(org_a, owner=owner_a, title="Lost", stage=stages_a["Proposal"])
    with in_tenant(org_a):
        big.tags.add(vip, Tag.objects.create(name="alpha"))
        Deal.objects.filter(pk=lost.pk).update(status="lost", lost_reason="budget", stage=stages_a["Lost"])
    return {"big": big, "small": small, "lost": lost}


def test_csv_export_streams_the_filtered_and_ordered_deal_list(as_owner_a, deals_a, owner_a):
    response = as_owner_a.get(URL, {"format": "csv", "status": "open", "ordering": "-amount"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="deals-')
    rows = csv_dicts(streamed(response))
    assert [row["title"] for row in rows] == ["Big", "Small"]
    big, small = rows
    assert list(big)[:4] == ["id", "title", "amount", "currency"]
    assert (big["amount"], big["currency"], big["pipeline"], big["stage"]) == (
        "5000.50",
        "USD",
        "Sales pipeline",
        "Qualification",
    )
    assert (big["contact"], big["company"], big["owner"], big["tags"]) == (
        "ada@acme.test",
        "Acme",
        owner_a.email,
        "alpha, vip",
    )
    assert (small["expected_close_date"], small["owner"], small["contact"]) == ("2027-01-31", "", "")
    assert big["created_at"].endswith("+00:00")


def test_the_deal_lists_filters_and_search_apply(as_owner_a, deals_a, stages_a):
    lost = csv_dicts(streamed(as_owner_a.get(URL, {"status": "lost"})))
    searched = csv_dicts(streamed(as_owner_a.get(URL, {"search": "acme"})))
    by_stage = csv_dicts(streamed(as_owner_a.get(URL, {"stage": stages_a["Qualification"].pk, "amount_min": 100})))

    assert [(row["title"], row["lost_reason"]) for row in lost] == [("Lost", "budget")]
    assert [row["title"] for row in searched] == ["Big"]
    assert [row["title"] for row in by_stage] == ["Big"]


def test_custom_fields_have_their_columns(as_owner_a, org_a, in_tenant, deals_a):
    with in_tenant(org_a):
        CustomField.objects.create(record_type="deal", key="vip", label="VIP", type=CustomFieldType.BOOLEAN)
        Deal.objects.filter(pk=deals_a["big"].pk).update(custom_fields={"vip": True})

    rows = {row["title"]: row for row in csv_dicts(streamed(as_owner_a.get(URL, {"cf_vip": "true"})))}

    assert list(rows) == ["Big"]
    assert rows["Big"]["custom_fields.vip"] == "true"


def test_a_sales_rep_exports_only_their_own_deals(org_a, owner_a, member, make_deal, pipeline_a):
    rep, client = member(org_a, "sales_rep")
    make_deal(org_a, owner=rep, title="Mine")
    make_deal(org_a, owner=owner_a, title="Theirs")

    assert [row["title"] for row in csv_dicts(streamed(client.get(URL)))] == ["Mine"]
    assert {row["title"] for row in csv_dicts(streamed(client_for(owner_a, org_a).get(URL)))} == {"Mine", "Theirs"}


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_roles_without_the_export_permission_get_403(org_a, member, role):
    _user, client = member(org_a, role)
    response = client.get(URL)
    assert response.status_code == 403
    assert (response.json()["code"], response.json()["permission"]) == ("permission_denied", "pipelines.deal.export")


def test_another_organizations_deals_are_not_exported(as_owner_a, org_b, make_deal, deals_a):
    make_deal(org_b, title="Org B deal")  # in org B's default pipeline, made when it was provisioned

    assert {row["title"] for row in csv_dicts(streamed(as_owner_a.get(URL)))} == {"Big", "Small", "Lost"}


def test_a_title_that_starts_like_a_formula_is_neutralized(as_owner_a, org_a, make_deal, pipeline_a):
    make_deal(org_a, title='=HYPERLINK("http://evil.test")')

    [row] = csv_dicts(streamed(as_owner_a.get(URL)))
    sheet = load_workbook(io.BytesIO(streamed(as_owner_a.get(URL, {"format": "xlsx"})))).active

    assert row["title"] == '\'=HYPERLINK("http://evil.test")'
    header = [cell.value for cell in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("title") + 1)
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://evil.test")', "s")


def test_xlsx_has_typed_cells_and_the_organizations_time_zone(as_owner_a, org_a, in_tenant, deals_a):
    as_owner_a.patch("/api/v1/organizations/current/", {"time_zone": "Europe/Berlin"}, format="json")
    stamp = datetime.datetime(2026, 1, 15, 12, 0, tzinfo=datetime.UTC)
    with in_tenant(org_a):
        Deal.objects.filter(pk=deals_a["lost"].pk).update(lost_at=stamp)

    response = as_owner_a.get(URL, {"format": "xlsx", "status": "lost"})

    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(streamed(response))).active
    header = [cell.value for cell in sheet[1]]
    row = dict(zip(header, [cell.value for cell in sheet[2]], strict=True))
    assert "lost_at (Europe/Berlin)" in header
    assert row["lost_at (Europe/Berlin)"] == datetime.datetime(2026, 1, 15, 13, 0)  # noqa: DTZ001 (a sheet has no zone)
    assert (row["title"], row["amount"], row["status"]) == ("Lost", 100.0, "lost")


def test_pdf_export(as_owner_a, deals_a):
    response = as_owner_a.get(URL, {"format": "pdf"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_export_costs_a_constant_number_of_queries(
    as_owner_a, org_a, in_tenant, make_deal, pipeline_a, django_assert_max_num_queries
):
    with in_tenant(org_a):
        tags = Tag.objects.bulk_create([Tag(name=f"t{i}") for i in range(3)])
        companies = Company.objects.bulk_create([Company(name=f"Co{i}") for i in range(30)])
    for i in range(30):
        deal = make_deal(org_a, title=f"D{i}", amount=Decimal(i), company=companies[i])
        with in_tenant(org_a):
            deal.tags.add(*tags)
    as_owner_a.get(URL)  # warm the authorization cache

    with django_assert_max_num_queries(6):
        rows = csv_dicts(streamed(as_owner_a.get(URL)))

    assert len(rows) == 30
    assert rows[0]["tags"] == "t0, t1, t2"
