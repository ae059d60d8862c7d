"""Lead conversion: new or matched contact and company, optional deal, atomic, once only, within scope."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Override
from crm.models import Activity, Company, Contact, Lead
from pipelines.models import Deal

from ..conftest import client_for

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
    assert body["contact"] == {"id": contact.pk, "name": str(contact), "created": False}
    assert body["company"] == {"id": company.pk, "name": str(company), "created": False}
    with in_tenant(org_a):
        assert Contact.objects.count() == 1
        assert Company.objects.count() == 1


def test_convert_matches_company_by_email_domain(as_owner_a, org_a, make, in_tenant):
    company = make.company(org_a, name="Cobol Inc", domain="cobol.example")
    lead = make.lead(org_a, name="Jean Sammet", email="jean@cobol.example")
    body = _convert(as_owner_a, lead).json()
    assert body["company"] == {"id": company.pk, "name": str(company), "created": False}
    assert body["contact"]["created"] is True
    with in_tenant(org_a):
        assert Contact.objects.get(pk=body["contact"]["id"]).company_id == company.pk


def test_convert_matches_company_by_name_and_ignores_free_mail_domains(as_owner_a, org_a, make, in_tenant):
    company = make.company(org_a, name="Bletchley Labs")
    make.company(org_a, name="Gmail squatter", domain="gmail.com")
    lead = make.lead(org_a, name="Alan", email="alan@gmail.com", company_name="bletchley labs")
    body = _convert(as_owner_a, lead).json()
    assert body["company"] == {"id": company.pk, "name": str(company), "created": False}


def test_convert_without_company_name_makes_no_company(as_owner_a, org_a, make):
    lead = make.lead(org_a, name="Solo Trader", email="solo@gmail.com")
    body = _convert(as_owner_a, lead).json()
    assert body["company"] is None
    assert body["contact"]["created"] is True


def test_convert_with_explicit_contact_and_company(as_owner_a, org_a, make):
    contact, company = make.contact(org_a), make.company(org_a)
    lead = make.lead(org_a, email="other@x.example", company_name="Other")
    body = _convert(as_owner_a, lead, contact=contact.pk, company=company.pk).json()
    assert body["contact"] == {"id": contact.pk, "name": str(contact), "created": False}
    assert body["company"] == {"id": company.pk, "name": str(company), "created": False}


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
    # The lead refers to what it became as every reference reads: {id, name}.
    converted = as_owner_a.get(f"/api/v1/leads/{lead.pk}/").json()
    assert (
        converted["converted_deal"]
        == {"id": deal.pk, "name": body["deal"]["name"]}
        == {"id": deal.pk, "name": deal.title}
    )
    assert converted["converted_contact"] == {"id": body["contact"]["id"], "name": body["contact"]["name"]}
    assert converted["converted_company"] == {"id": body["company"]["id"], "name": "Deal Co"}


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


def test_conversion_never_matches_a_contact_out_of_reach(rep_a, org_a, owner_a, make, in_tenant, events):
    """A Sales Rep's own lead whose e-mail belongs to a colleague's contact: the contact is neither returned nor
    written to (e-mail addresses are unique, so no second contact can be made): 400 ``out_of_scope``."""
    user, client = rep_a
    theirs = make.company(org_a, name="Foreign Co", domain="foreign.example", owner=owner_a)
    their_contact = make.contact(org_a, email="ceo@foreign.example", owner=owner_a)
    lead = make.lead(org_a, name="CEO", email="CEO@foreign.example", company_name="Foreign Co", owner=user)
    note = make.activity(org_a, lead=lead, owner=user, subject="My call")
    response = _convert(client, lead)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert [(error["field"], error["code"]) for error in body["errors"]] == [("contact", "out_of_scope")]
    assert str(their_contact.pk) not in response.content.decode()
    with in_tenant(org_a):
        their_contact.refresh_from_db()
        note.refresh_from_db()
        assert their_contact.company_id is None
        assert (note.contact_id, note.company_id) == (None, None)
        assert Lead.objects.get(pk=lead.pk).status == "new"
        assert list(Company.objects.values_list("pk", flat=True)) == [theirs.pk]
    assert events(org_a, "lead.converted") == []
    # The owner reaches the contact: the same conversion matches it.
    as_owner = _convert(client_for(owner_a, org_a), lead).json()
    assert as_owner["contact"] == {"id": their_contact.pk, "name": str(their_contact), "created": False}


def test_conversion_passes_over_companies_out_of_reach(rep_a, org_a, owner_a, make, in_tenant):
    """Companies the Sales Rep cannot see (by the contact, the e-mail's domain or the name) are not matched: the
    conversion makes the rep's own company and attaches nothing to the colleague's."""
    user, client = rep_a
    theirs = make.company(org_a, name="Foreign Co", domain="foreign.example", owner=owner_a)
    mine = make.contact(org_a, email="old-friend@foreign.example", owner=user, company=theirs)
    by_contact = make.lead(org_a, email="old-friend@foreign.example", company_name="Foreign Co", owner=user)
    by_domain = make.lead(org_a, email="buyer@foreign.example", company_name="Foreign Co", owner=user)
    note = make.activity(org_a, lead=by_domain, owner=user)

    first = _convert(client, by_contact)
    assert first.status_code == 200, first.content
    assert first.json()["contact"] == {"id": mine.pk, "name": str(mine), "created": False}
    assert first.json()["company"]["created"] is True
    second = _convert(client, by_domain)
    assert second.status_code == 200, second.content
    assert second.json()["contact"]["created"] is True
    assert second.json()["company"] == {**first.json()["company"], "created": False}  # the rep's own
    with in_tenant(org_a):
        created = Company.objects.get(pk=first.json()["company"]["id"])
        assert (created.name, created.owner_id) == ("Foreign Co", user.pk)
        assert (created.domain, Company.objects.get(pk=theirs.pk).domain) == ("", "foreign.example")  # unique
        assert created.pk != theirs.pk
        note.refresh_from_db()
        assert note.company_id == created.pk
        assert Contact.objects.get(pk=mine.pk).company_id == theirs.pk  # the contact's own link is kept
        assert not Activity.objects.filter(company=theirs).exists()


def test_an_explicit_contact_must_be_one_you_may_edit(org_a, owner_a, member, make):
    """The contact named in the body is held to the same reach as a matched one: ``crm.contact.update``."""
    from rbac.models import Role
    from rbac.services import membership_create

    from ..factories import make_user

    role = Role.objects.create(
        organization=org_a,
        key="reader-converter",
        name="Reader converter",
        grants={"crm.lead.view": "all", "crm.lead.convert": "all", "crm.contact.view": "all"},
    )
    user = make_user()
    membership_create(user=user, organization=org_a, role=role)
    contact = make.contact(org_a, owner=owner_a)
    lead = make.lead(org_a, owner=owner_a)
    response = _convert(client_for(user, org_a), lead, contact=contact.pk)
    assert response.status_code == 400
    assert [(error["field"], error["code"]) for error in response.json()["errors"]] == [("contact", "does_not_exist")]
