"""Lead conversion: new or matched contact and company, optional deal, atomic, once only, within scope."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Override
from crm.models import Company, Contact, Lead
from pipelines.models import Deal

pytestmark = pytest.mark.django_db


def _convert(client, lead, **body):
    return client.post(f"/api/v1/leads/{lead.pk}/convert/", body, format="json")


def test_convert_creates_contact_and_company(as_owner_a, org_a, owner_a, make, events, in_tenant):
    lead = make.lead(
        org_a,
        name="Ada Lovelace",
        email="Ada@Engines.example",
        phone="+44 1",
        company_name="Analytical Engines",
        source="referral",
        owner=owner_a,
        tags=["vip"],
    )
    note = make.activity(org_a, lead=lead, subject="First call")
    response = _convert(as_owner_a, lead)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["lead"]["status"] == "converted"
    assert body["lead"]["converted_at"] is not None
    assert body["contact"]["created"] is True
    assert body["company"]["created"] is True
    assert body["deal"] is None
    with in_tenant(org_a):
        contact = Contact.objects.get(pk=body["contact"]["id"])
        company = Company.objects.get(pk=body["company"]["id"])
        lead = Lead.objects.get(pk=lead.pk)
        assert (contact.first_name, contact.last_name, contact.email) == ("Ada", "Lovelace", "ada@engines.example")
        assert (contact.phone, contact.source, contact.owner_id, contact.company_id) == (
            "+44 1",
            "referral",
            owner_a.pk,
            company.pk,
        )
        assert [tag.name for tag in contact.tags.all()] == ["vip"]
        assert (company.name, company.domain, company.owner_id) == ("Analytical Engines", "engines.example", owner_a.pk)
        assert (lead.converted_contact_id, lead.converted_company_id) == (contact.pk, company.pk)
        note.refresh_from_db()
        assert (note.contact_id, note.company_id) == (contact.pk, company.pk)
    converted = events(org_a, "lead.converted", lead)
    assert len(converted) == 1
    assert converted[0].payload["contact"] == contact.pk
    assert converted[0].payload["contact_created"] is True
    assert len(events(org_a, "contact.created", contact)) == 1
    assert len(events(org_a, "company.created", company)) == 1


def test_convert_matches_existing_contact_by_email_and_its_company(as_owner_a, org_a, make, in_tenant):
    company = make.company(org_a, name="Existing Co")
    contact = make.contact(org_a, email="grace@navy.example", company=company)
    lead = make.lead(org_a, name="Grace", email="GRACE@navy.example", company_name="Something else")
    body = _convert(as_owner_a, lead).json()
    assert body["contact"] == {"id": contact.pk, "created": False}
    assert body["company"] == {"id": company.pk, "created": False}
    with in_tenant(org_a):
        assert Contact.objects.count() == 1
        assert Company.objects.count() == 1


def test_convert_matches_company_by_email_domain(as_owner_a, org_a, make, in_tenant):
    company = make.company(org_a, name="Cobol Inc", domain="cobol.example")
    lead = make.lead(org_a, name="Jean Sammet", email="jean@cobol.example")
    body = _convert(as_owner_a, lead).json()
    assert body["company"] == {"id": company.pk, "created": False}
    assert body["contact"]["created"] is True
    with in_tenant(org_a):
        assert Contact.objects.get(pk=body["contact"]["id"]).company_id == company.pk


def test_convert_matches_company_by_name_and_ignores_free_mail_domains(as_owner_a, org_a, make, in_tenant):
    company = make.company(org_a, name="Bletchley Labs")
    make.company(org_a, name="Gmail squatter", domain="gmail.com")
    lead = make.lead(org_a, name="Alan", email="alan@gmail.com", company_name="bletchley labs")
    body = _convert(as_owner_a, lead).json()
    assert body["company"] == {"id": company.pk, "created": False}


def test_convert_without_company_name_makes_no_company(as_owner_a, org_a, make):
    lead = make.lead(org_a, name="Solo Trader", email="solo@gmail.com")
    body = _convert(as_owner_a, lead).json()
    assert body["company"] is None
    assert body["contact"]["created"] is True


def test_convert_with_explicit_contact_and_company(as_owner_a, org_a, make):
    contact, company = make.contact(org_a), make.company(org_a)
    lead = make.lead(org_a, email="other@x.example", company_name="Other")
    body = _convert(as_owner_a, lead, contact=contact.pk, company=company.pk).json()
    assert body["contact"] == {"id": contact.pk, "created": False}
    assert body["company"] == {"id": company.pk, "created": False}


def test_converting_twice_is_409_and_changes_nothing(as_owner_a, org_a, make, events, in_tenant):
    lead = make.lead(org_a, company_name="Once Co")
    assert _convert(as_owner_a, lead).status_code == 200
    response = _convert(as_owner_a, lead, create_deal=True)
    assert response.status_code == 409
    assert response.json()["code"] == "lead_already_converted"
    with in_tenant(org_a):
        assert Contact.objects.count() == 1
        assert Company.objects.count() == 1
        assert Deal.objects.count() == 0
    assert len(events(org_a, "lead.converted")) == 1


def test_disqualified_lead_is_not_converted(as_owner_a, org_a, make):
    lead = make.lead(org_a)
    as_owner_a.post(f"/api/v1/leads/{lead.pk}/disqualify/", {"reason": "No budget"}, format="json")
    response = _convert(as_owner_a, lead)
    assert response.status_code == 409
    assert response.json()["code"] == "lead_not_convertible"


def test_convert_with_deal(as_owner_a, org_a, owner_a, make, in_tenant, events):
    lead = make.lead(org_a, name="Big deal", company_name="Deal Co", estimated_value=Decimal("1234.50"), owner=owner_a)
    response = _convert(as_owner_a, lead, create_deal=True)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["deal"]["created"] is True
    with in_tenant(org_a):
        deal = Deal.objects.get(pk=body["deal"]["id"])
        assert (deal.amount, deal.owner_id) == (Decimal("1234.50"), owner_a.pk)
        assert (deal.contact_id, deal.company_id) == (body["contact"]["id"], body["company"]["id"])
        assert Lead.objects.get(pk=lead.pk).converted_deal_id == deal.pk
        assert Contact.objects.get(pk=body["contact"]["id"]).lifecycle_stage == "opportunity"
    assert events(org_a, "lead.converted", lead)[0].payload["deal"] == deal.pk
    assert len(events(org_a, "deal.created", deal)) == 1


def test_conversion_is_atomic_when_the_deal_limit_is_reached(as_owner_a, org_a, make, in_tenant, events):
    Override.objects.create(organization=org_a, limit="deals", limit_value=0)
    lead = make.lead(org_a, company_name="Rolled Back Co", email="rb@rolled.example")
    response = _convert(as_owner_a, lead, create_deal=True)
    assert response.status_code == 403
    assert response.json()["code"] == "plan_limit_reached"
    with in_tenant(org_a):
        assert Lead.objects.get(pk=lead.pk).status == "new"
        assert not Contact.objects.exists()
        assert not Company.objects.exists()
    assert events(org_a, "lead.converted") == []
    assert events(org_a, "contact.created") == []


def test_sales_rep_converts_only_own_leads(rep_a, org_a, owner_a, make, in_tenant):
    user, client = rep_a
    mine, other = make.lead(org_a, owner=user, company_name="Mine Co"), make.lead(org_a, owner=owner_a)
    assert _convert(client, other).status_code == 404
    response = _convert(client, mine)
    assert response.status_code == 200
    with in_tenant(org_a):
        assert Contact.objects.get(pk=response.json()["contact"]["id"]).owner_id == user.pk
        assert Lead.objects.get(pk=other.pk).status == "new"


def test_viewer_cannot_convert(member, org_a, make):
    _user, client = member(org_a, "viewer")
    response = _convert(client, make.lead(org_a))
    assert response.status_code == 403
    assert response.json()["permission"] == "crm.lead.convert"
