"""Organization settings (``PATCH /organizations/current/``): name, time zone, currency, logo; who may change them;
validation; the audit; and the apps that read them (analytics, campaigns, exports, new pipelines and deals)."""

from __future__ import annotations

import datetime
import io
import zoneinfo

import pytest
from openpyxl import load_workbook

from crm.campaigns.selectors import organization_time_zone
from crm.models import Lead
from identity.apikeys import apikey_create
from rbac.models import AuditEntry
from rbac.roles import default_grants
from tenants.models import Organization

from ..conftest import client_for
from ..problems import field_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/organizations/current/"


def test_get_returns_the_settings_with_their_defaults(as_owner_a, settings):
    settings.TIME_ZONE = "America/New_York"
    body = as_owner_a.get(URL).json()
    assert (body["name"], body["time_zone"], body["currency"], body["logo_url"]) == (
        "Org A",
        "America/New_York",  # none of its own: the deployment's
        "USD",
        "",
    )
    assert body["role"] == "owner"


def test_an_owner_changes_every_setting_and_the_change_is_audited(as_owner_a, org_a, owner_a):
    response = as_owner_a.patch(
        URL,
        {
            "name": " Org A Renamed ",
            "time_zone": "Europe/Paris",
            "currency": "eur",
            "logo_url": "https://cdn.test/l.png",
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["name"], body["time_zone"], body["currency"], body["logo_url"]) == (
        "Org A Renamed",
        "Europe/Paris",
        "EUR",
        "https://cdn.test/l.png",
    )
    assert as_owner_a.get(URL).json()["time_zone"] == "Europe/Paris"  # the next request resolves the new values
    entry = AuditEntry.objects.get(organization=org_a, action="organization.updated")
    assert entry.actor_id == owner_a.pk
    assert entry.before == {"name": "Org A", "time_zone": "", "currency": "USD", "logo_url": ""}
    assert entry.after == {
        "name": "Org A Renamed",
        "time_zone": "Europe/Paris",
        "currency": "EUR",
        "logo_url": "https://cdn.test/l.png",
    }


def test_an_unchanged_setting_writes_no_audit_entry(as_owner_a, org_a):
    assert as_owner_a.patch(URL, {"currency": "USD"}, format="json").status_code == 200
    assert not AuditEntry.objects.filter(organization=org_a, action="organization.updated").exists()


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("manager", 403), ("viewer", 403)])
def test_owners_and_admins_may_change_the_settings(org_a, member, role, status):
    _user, client = member(org_a, role)
    response = client.patch(URL, {"currency": "GBP"}, format="json")
    assert response.status_code == status
    if status == 403:
        assert response.json()["permission"] == "tenants.organization.update"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("time_zone", "Mars/Olympus", "invalid_time_zone"),
        ("time_zone", "europe/paris", "invalid_time_zone"),
        ("currency", "XYZ", "invalid_currency"),
        ("currency", "€", "invalid_currency"),
        ("logo_url", "http://cdn.test/l.png", "invalid_logo_url"),
        ("logo_url", "https://user:secret@cdn.test/l.png", "invalid_logo_url"),
        ("logo_url", "javascript:alert(1)", "invalid_logo_url"),
        ("logo_url", "https://", "invalid_logo_url"),
        ("name", "   ", "blank"),
    ],
)
def test_invalid_settings_are_400_with_the_fields_code_and_change_nothing(as_owner_a, org_a, field, value, code):
    response = as_owner_a.patch(URL, {"name": "Should Not Stick", field: value}, format="json")

    error = field_error(response)
    assert (error["field"], error["code"]) == (field, code)
    assert Organization.objects.get(pk=org_a.pk).name == "Org A"


def test_every_invalid_field_is_named(as_owner_a):
    response = as_owner_a.patch(URL, {"time_zone": "Nowhere", "currency": "ZZZ"}, format="json")
    assert response.status_code == 400
    assert {(e["field"], e["code"]) for e in response.json()["errors"]} == {
        ("time_zone", "invalid_time_zone"),
        ("currency", "invalid_currency"),
    }


def test_an_empty_logo_url_removes_the_logo(as_owner_a):
    as_owner_a.patch(URL, {"logo_url": "https://cdn.test/l.png"}, format="json")
    assert as_owner_a.patch(URL, {"logo_url": None}, format="json").json()["logo_url"] == ""


# --- the apps that read the settings ---


def test_analytics_answer_in_the_organizations_time_zone(as_owner_a):
    as_owner_a.patch(URL, {"time_zone": "Asia/Tokyo"}, format="json")
    report = as_owner_a.get("/api/v1/analytics/activity/?start=2026-03-23&end=2026-03-29").json()
    assert report["period"]["time_zone"] == "Asia/Tokyo"


def test_a_cached_forecast_is_never_answered_in_the_previous_time_zone(as_owner_a):
    as_owner_a.patch(URL, {"time_zone": "Europe/Paris"}, format="json")
    assert as_owner_a.get("/api/v1/analytics/forecast/").json()["time_zone"] == "Europe/Paris"  # cached now

    as_owner_a.patch(URL, {"time_zone": "Europe/Madrid"}, format="json")

    assert as_owner_a.get("/api/v1/analytics/forecast/").json()["time_zone"] == "Europe/Madrid"


def test_campaigns_send_in_the_organizations_time_zone(as_owner_a, org_a):
    as_owner_a.patch(URL, {"time_zone": "Australia/Sydney"}, format="json")
    assert organization_time_zone(Organization.objects.get(pk=org_a.pk)) == zoneinfo.ZoneInfo("Australia/Sydney")


def test_xlsx_exports_name_and_use_the_organizations_time_zone(as_owner_a, org_a, in_tenant):
    as_owner_a.patch(URL, {"time_zone": "America/Los_Angeles"}, format="json")
    stamp = datetime.datetime(2025, 7, 1, 12, 0, tzinfo=datetime.UTC)
    with in_tenant(org_a):
        lead = Lead.objects.create(name="Ada")
        Lead.objects.filter(pk=lead.pk).update(created_at=stamp)

    response = as_owner_a.get("/api/v1/exports/leads/?format=xlsx")
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).active
    header, row = list(sheet.iter_rows(values_only=True))
    column = header.index("created_at (America/Los_Angeles)")
    local = datetime.datetime(2025, 7, 1, 5, 0, tzinfo=zoneinfo.ZoneInfo("America/Los_Angeles"))
    assert row[column] == local.replace(tzinfo=None)  # 12:00 UTC is 05:00 in Los Angeles in July


def test_new_pipelines_and_their_deals_default_to_the_organizations_currency(as_owner_a):
    as_owner_a.patch(URL, {"currency": "JPY"}, format="json")

    pipeline = as_owner_a.post("/api/v1/pipelines/", {"name": "Japan"}, format="json").json()
    deal = as_owner_a.post("/api/v1/deals/", {"title": "Tokyo", "pipeline": pipeline["id"]}, format="json").json()
    chosen = as_owner_a.post("/api/v1/pipelines/", {"name": "Euro", "currency": "EUR"}, format="json").json()

    assert (pipeline["currency"], deal["currency"], chosen["currency"]) == ("JPY", "JPY", "EUR")


# --- deletion by the owner ---


def _delete(client, confirm=None):
    return client.delete(URL + (f"?confirm={confirm}" if confirm is not None else ""))


@pytest.mark.parametrize("confirm", [None, "", "org-b", "org-"])
def test_deletion_needs_the_slug_typed_back(as_owner_a, org_a, confirm):
    response = _delete(as_owner_a, confirm)
    assert response.status_code == 400
    assert response.json()["code"] == "confirmation_required"
    assert Organization.objects.get(pk=org_a.pk).status == "active"


def test_the_owner_deletes_the_organization_it_is_suspended_then_purged(org_a, owner_a, as_owner_a, settings):
    response = _delete(as_owner_a, "org-a")

    assert response.status_code == 202, response.json()
    body = response.json()
    organization = Organization.objects.get(pk=org_a.pk)
    assert organization.status == body["status"] == "deleted"
    purge_after = organization.deleted_at + datetime.timedelta(days=settings.TENANT_PURGE_AFTER_DAYS)
    assert datetime.datetime.fromisoformat(body["purge_after"]) == purge_after
    entry = AuditEntry.objects.get(organization=org_a, action="organization.deleted")
    assert (entry.actor_id, entry.before, entry.after["status"]) == (owner_a.pk, {"status": "active"}, "deleted")
    # No request reaches it any more: the same 404 as an unknown organization.
    gone = as_owner_a.get(URL)
    assert (gone.status_code, gone.json()["code"]) == (404, "organization_not_found")


def test_a_deleted_organization_is_purged_after_the_grace_period(owner_a, settings):
    from django.utils import timezone
    from django_tenants.utils import schema_exists

    from tenants.services import purge_due_organizations

    from ..factories import make_member, make_organization

    organization = make_organization(name="Short Lived", slug="short-lived")
    make_member(user=owner_a, organization=organization, role="owner")
    assert _delete(client_for(owner_a, organization), "short-lived").status_code == 202

    assert purge_due_organizations() == []  # within the grace period: kept
    later = timezone.now() + datetime.timedelta(days=settings.TENANT_PURGE_AFTER_DAYS, minutes=1)
    assert purge_due_organizations(now=later) == [organization.schema_name]
    assert not Organization.objects.filter(pk=organization.pk).exists()
    assert not schema_exists(organization.schema_name)


def test_an_admin_may_not_delete_the_organization(org_a, member):
    _user, admin = member(org_a, "admin")
    response = _delete(admin, "org-a")
    assert response.status_code == 403
    assert response.json()["permission"] == "tenants.organization.delete"
    assert Organization.objects.get(pk=org_a.pk).status == "active"


def test_an_api_key_never_deletes_the_organization(org_a, owner_a):
    grants = default_grants("owner")
    _key, secret = apikey_create(organization=org_a, name="All", scopes=grants, actor=owner_a, actor_grants=grants)
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = _delete(client, "org-a")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert Organization.objects.get(pk=org_a.pk).status == "active"
