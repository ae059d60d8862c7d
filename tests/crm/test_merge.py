"""Merging duplicate contacts and companies: every reference moves to the survivor, atomically, within scope."""

from __future__ import annotations

import pytest

from crm.models import Activity, Company, Contact, Lead
from pipelines.models import Deal

from ..problems import field_error

pytestmark = pytest.mark.django_db


def test_merge_contacts_moves_every_reference(as_owner_a, org_a, make, in_tenant, events):
    company = make.company(org_a)
    survivor = make.contact(org_a, first_name="Ada", last_name="Lovelace", tags=["a"], custom_fields_values=None)
    duplicate = make.contact(
        org_a, last_name="Lovelace (dup)", email="ada@dup.example", phone="123", company=company, tags=["b"]
    )
    activity = make.activity(org_a, contact=duplicate)
    deal = make.deal(org_a, contact=duplicate)
    lead = make.lead(org_a)
    with in_tenant(org_a):
        Lead.objects.filter(pk=lead.pk).update(converted_contact=duplicate)

    response = as_owner_a.post(f"/api/v1/contacts/{survivor.pk}/merge/", {"duplicate": duplicate.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    # Blank fields are filled from the duplicate; the survivor's own values stay.
    assert (body["first_name"], body["last_name"], body["email"], body["phone"]) == (
        "Ada",
        "Lovelace",
        "ada@dup.example",
        "123",
    )
    assert body["company"]["id"] == company.pk
    assert body["tags"] == ["a", "b"]
    with in_tenant(org_a):
        assert not Contact.objects.filter(pk=duplicate.pk).exists()
        assert Activity.objects.get(pk=activity.pk).contact_id == survivor.pk
        assert Deal.objects.get(pk=deal.pk).contact_id == survivor.pk
        assert Lead.objects.get(pk=lead.pk).converted_contact_id == survivor.pk
    merged = events(org_a, "contact.merged", survivor)
    assert len(merged) == 1
    assert merged[0].payload["merged"]["id"] == duplicate.pk
    assert merged[0].payload["moved"] == {"activities": [activity.pk], "deals": [deal.pk], "leads": [lead.pk]}


def test_merge_companies_moves_contacts_activities_deals_and_leads(as_owner_a, org_a, make, in_tenant, events):
    survivor = make.company(org_a, name="Acme")
    duplicate = make.company(org_a, name="ACME Inc.", domain="acme.example")
    contact = make.contact(org_a, company=duplicate)
    activity = make.activity(org_a, company=duplicate)
    deal = make.deal(org_a, company=duplicate)
    lead = make.lead(org_a)
    with in_tenant(org_a):
        Lead.objects.filter(pk=lead.pk).update(converted_company=duplicate)
    response = as_owner_a.post(f"/api/v1/companies/{survivor.pk}/merge/", {"duplicate": duplicate.pk}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["domain"] == "acme.example"  # taken over from the duplicate: its domain is unique
    assert response.json()["name"] == "Acme"
    with in_tenant(org_a):
        assert not Company.objects.filter(pk=duplicate.pk).exists()
        assert Contact.objects.get(pk=contact.pk).company_id == survivor.pk
        assert Activity.objects.get(pk=activity.pk).company_id == survivor.pk
        assert Deal.objects.get(pk=deal.pk).company_id == survivor.pk
        assert Lead.objects.get(pk=lead.pk).converted_company_id == survivor.pk
    assert events(org_a, "company.merged", survivor)[0].payload["moved"]["contacts"] == [contact.pk]


def test_merge_into_itself_is_refused(as_owner_a, org_a, make):
    contact = make.contact(org_a)
    response = as_owner_a.post(f"/api/v1/contacts/{contact.pk}/merge/", {"duplicate": contact.pk}, format="json")
    assert response.status_code == 400
    assert field_error(response)["code"] == "merge_same_record"


def test_merge_with_a_foreign_or_unknown_duplicate_is_404_and_changes_nothing(
    as_owner_a, org_a, org_b, make, foreign, in_tenant, events
):
    survivor = make.contact(org_a)
    other = foreign("contact")
    for duplicate in (other.pk, 987654321):
        response = as_owner_a.post(f"/api/v1/contacts/{survivor.pk}/merge/", {"duplicate": duplicate}, format="json")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    with in_tenant(org_b):
        assert Contact.objects.filter(pk=other.pk).exists()
    assert events(org_a, "contact.merged") == []


def test_sales_rep_merges_only_own_records(rep_a, org_a, owner_a, make, in_tenant):
    user, client = rep_a
    mine_1, mine_2 = make.contact(org_a, owner=user), make.contact(org_a, owner=user)
    other = make.contact(org_a, owner=owner_a)
    assert client.post(f"/api/v1/contacts/{mine_1.pk}/merge/", {"duplicate": other.pk}).status_code == 404
    assert client.post(f"/api/v1/contacts/{other.pk}/merge/", {"duplicate": mine_1.pk}).status_code == 404
    with in_tenant(org_a):
        assert Contact.objects.filter(pk__in=[mine_1.pk, other.pk]).count() == 2
    assert client.post(f"/api/v1/contacts/{mine_1.pk}/merge/", {"duplicate": mine_2.pk}).status_code == 200


def test_support_cannot_merge(member, org_a, make):
    _user, client = member(org_a, "support")
    a, b = make.contact(org_a), make.contact(org_a)
    response = client.post(f"/api/v1/contacts/{a.pk}/merge/", {"duplicate": b.pk}, format="json")
    assert response.status_code == 403
    assert response.json()["permission"] == "crm.contact.merge"
