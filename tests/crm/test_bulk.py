"""Bulk update and delete of leads, contacts and companies: all or nothing, errors per item, within scope."""

from __future__ import annotations

import pytest

from crm.models import Company, Contact, Lead

from ..problems import field_error

pytestmark = pytest.mark.django_db

RESOURCES = {"lead": ("leads", Lead), "contact": ("contacts", Contact), "company": ("companies", Company)}


@pytest.mark.parametrize("kind", list(RESOURCES))
def test_bulk_update_owner_and_tags(as_owner_a, org_a, owner_a, member, make, in_tenant, events, kind):
    resource, model = RESOURCES[kind]
    colleague, _client = member(org_a, "manager")
    first = getattr(make, kind)(org_a, tags=["old", "keep"])
    second = getattr(make, kind)(org_a, owner=colleague)
    response = as_owner_a.post(
        f"/api/v1/{resource}/bulk-update/",
        {"ids": [first.pk, second.pk], "owner": owner_a.pk, "add_tags": ["New"], "remove_tags": ["OLD"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"ids": [first.pk, second.pk], "count": 2}
    with in_tenant(org_a):
        rows = {row.pk: row for row in model.objects.filter(pk__in=[first.pk, second.pk])}
        assert {row.owner_id for row in rows.values()} == {owner_a.pk}
        assert sorted(t.name for t in rows[first.pk].tags.all()) == ["New", "keep"]
        assert sorted(t.name for t in rows[second.pk].tags.all()) == ["New"]
    updated = {event.subject_id: event.payload for event in events(org_a, f"{kind}.updated")}
    assert updated[str(first.pk)]["changes"]["tags"] == ["New", "keep"]
    assert updated[str(second.pk)]["changes"]["owner_id"] == [colleague.pk, owner_a.pk]


def test_bulk_replace_tags_and_status(as_owner_a, org_a, make, in_tenant):
    a, b = make.contact(org_a, tags=["x"]), make.contact(org_a)
    response = as_owner_a.post(
        "/api/v1/contacts/bulk-update/", {"ids": [a.pk, b.pk], "tags": ["y"], "status": "inactive"}, format="json"
    )
    assert response.status_code == 200, response.content
    with in_tenant(org_a):
        for contact in Contact.objects.filter(pk__in=[a.pk, b.pk]):
            assert contact.status == "inactive"
            assert [t.name for t in contact.tags.all()] == ["y"]


def test_bulk_update_is_all_or_nothing_with_per_item_errors(as_owner_a, org_a, make, foreign, in_tenant, events):
    ok = make.lead(org_a, status="new")
    converted = make.lead(org_a)
    with in_tenant(org_a):
        Lead.objects.filter(pk=converted.pk).update(status="converted")
    other = foreign("lead")
    response = as_owner_a.post(
        "/api/v1/leads/bulk-update/",
        {"ids": [ok.pk, converted.pk, other.pk, 99999999], "status": "contacted"},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bulk_failed"
    found = {(error["id"], error["code"]) for error in body["errors"]}
    assert found == {
        (converted.pk, "invalid_lead_transition"),
        (other.pk, "not_found"),
        (99999999, "not_found"),
    }
    with in_tenant(org_a):
        assert Lead.objects.get(pk=ok.pk).status == "new"
    assert events(org_a, "lead.updated") == []


def test_bulk_update_needs_something_to_change_and_valid_status(as_owner_a, org_a, make):
    lead = make.lead(org_a)
    assert as_owner_a.post("/api/v1/leads/bulk-update/", {"ids": [lead.pk]}, format="json").status_code == 400
    response = as_owner_a.post("/api/v1/leads/bulk-update/", {"ids": [lead.pk], "status": "converted"}, format="json")
    assert response.status_code == 400
    response = as_owner_a.post("/api/v1/companies/bulk-update/", {"ids": [1], "status": "active"}, format="json")
    assert response.status_code == 400  # companies have no status: nothing to change


@pytest.mark.parametrize("kind", list(RESOURCES))
def test_bulk_delete_all_or_nothing(as_owner_a, org_a, make, foreign, in_tenant, events, kind):
    resource, model = RESOURCES[kind]
    a, b = getattr(make, kind)(org_a), getattr(make, kind)(org_a)
    other = foreign(kind)
    response = as_owner_a.post(f"/api/v1/{resource}/bulk-delete/", {"ids": [a.pk, other.pk]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "ids", "id": other.pk, "code": "not_found", "detail": "Not found."}]
    with in_tenant(org_a):
        assert model.objects.filter(pk__in=[a.pk, b.pk]).count() == 2
    response = as_owner_a.post(f"/api/v1/{resource}/bulk-delete/", {"ids": [a.pk, b.pk, a.pk]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"ids": [a.pk, b.pk], "count": 2}
    with in_tenant(org_a):
        assert not model.objects.filter(pk__in=[a.pk, b.pk]).exists()
    assert {event.subject_id for event in events(org_a, f"{kind}.deleted")} == {str(a.pk), str(b.pk)}


@pytest.mark.parametrize("kind", list(RESOURCES))
def test_sales_rep_bulk_changes_only_own_records(rep_a, org_a, owner_a, make, in_tenant, kind):
    resource, model = RESOURCES[kind]
    user, client = rep_a
    mine, other = getattr(make, kind)(org_a, owner=user), getattr(make, kind)(org_a, owner=owner_a)
    response = client.post(f"/api/v1/{resource}/bulk-update/", {"ids": [mine.pk, other.pk], "add_tags": ["x"]})
    assert response.status_code == 400
    assert [(e["id"], e["code"]) for e in response.json()["errors"]] == [(other.pk, "not_found")]
    response = client.post(f"/api/v1/{resource}/bulk-delete/", {"ids": [mine.pk, other.pk]}, format="json")
    assert response.status_code == 400
    with in_tenant(org_a):
        assert model.objects.filter(pk__in=[mine.pk, other.pk]).count() == 2
        assert not model.objects.get(pk=mine.pk).tags.exists()
    # Handing records to someone else is out of reach for the whole request.
    response = client.post(f"/api/v1/{resource}/bulk-update/", {"ids": [mine.pk], "owner": owner_a.pk})
    assert response.status_code == 400
    assert field_error(response)["code"] == "out_of_scope"
    assert client.post(f"/api/v1/{resource}/bulk-delete/", {"ids": [mine.pk]}, format="json").status_code == 200
