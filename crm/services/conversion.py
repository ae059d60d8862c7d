"""Lead conversion: a lead becomes a contact (and company, and optionally a deal) in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from integrations import outbox
from rbac.actor import Actor, reachable, require_actor

from .. import records
from ..choices import LeadStatus, LifecycleStage
from ..errors import LeadAlreadyConverted, LeadNotConvertible, OutOfReach
from ..models import Activity, Company, Contact, Lead, Record
from ..permissions import COMPANY_VIEW, CONTACT_UPDATE
from .contacts import company_create, company_domain_taken, contact_insert, normalize_domain

# Mailbox providers: an address there says nothing about the person's company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.com",
        "zoho.com",
    }
)


@dataclass
class Conversion:
    lead: Lead
    contact: Contact
    contact_created: bool
    company: Company | None
    company_created: bool
    deal: Record | None  # a pipelines.models.Deal, opened through crm.records.open_deal


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().split(None, 1)
    if not parts:
        return "", ""
    return (parts[0][:100], parts[1][:100]) if len(parts) == 2 else ("", parts[0][:100])


def company_domain(email: str) -> str:
    """The company domain an e-mail address reveals, or "" for free mailbox providers."""
    domain = normalize_domain(email.rpartition("@")[2]) if "@" in email else ""
    return "" if domain in FREE_MAIL_DOMAINS else domain


def _match_contact(email: str, actor: Actor) -> Contact | None:
    """The contact with the lead's e-mail, when the actor may edit it (the conversion writes to it). One outside
    the actor's reach is refused, not replaced: e-mail addresses are unique among contacts, so no second contact
    can take it, and the caller learns no more than creating that contact would tell (that the address is used)."""
    if not email:
        return None
    found = reachable(Contact, actor, CONTACT_UPDATE).filter(email=email).first()
    if found is None and Contact.objects.filter(email=email).exists():
        raise OutOfReach(
            "A contact you may not edit already has the lead's e-mail address: convert into one of your contacts, "
            "or ask a colleague who may edit that contact.",
            field="contact",
        )
    return found


def _match_company(companies: QuerySet[Company], lead: Lead, domain: str) -> Company | None:
    if domain:
        found = companies.filter(domain=domain).order_by("pk").first()
        if found is not None:
            return found
    name = (lead.company_name or "").strip()
    if name:
        return companies.annotate(lower=Lower("name")).filter(lower=name.lower()).order_by("pk").first()
    return None


@transaction.atomic
def lead_convert(
    *,
    lead: Lead,
    actor: Actor,
    contact: Contact | None = None,
    company: Company | None = None,
    create_deal: bool = False,
) -> Conversion:
    """Convert a lead. The contact is ``contact``, else the one with the lead's e-mail, else a new one; the
    company is ``company``, else the matched contact's, else the one with the e-mail's domain or the lead's
    company name, else a new one named after ``company_name`` (none when the lead names no company). New
    records belong to the lead's owner and get its tags; the lead's activities are attached to the contact
    and company. With ``create_deal`` a deal opens in the default pipeline (:func:`crm.records.open_deal`, which
    pipelines fills with ``deal_create_from_lead``). A second conversion is 409 ``lead_already_converted``.

    Matching stays within the actor's reach, like ids given in the body: a contact the actor may edit
    (``crm.contact.update``; one outside reach with the lead's e-mail is 400 ``out_of_scope`` on ``contact``), a
    company the actor may see (``crm.company.view``; others are passed over, as if they did not exist). A new
    company takes the e-mail's domain unless a company passed over has it (domains are unique).
    """
    require_actor(actor)
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    if lead.status == LeadStatus.CONVERTED:
        raise LeadAlreadyConverted()
    if lead.status == LeadStatus.UNQUALIFIED:
        raise LeadNotConvertible()
    tags = [tag.name for tag in lead.tags.all()]
    email = (lead.email or "").strip().lower()
    domain = company_domain(email)

    if contact is None:
        contact = _match_contact(email, actor)
    companies = reachable(Company, actor, COMPANY_VIEW)
    if company is None and contact is not None and contact.company_id is not None:
        company = companies.filter(pk=contact.company_id).first()
    if company is None:
        company = _match_company(companies, lead, domain)
    company_created = False
    if company is None and (lead.company_name or "").strip():
        # A company passed over (outside reach) may hold the domain; domains are unique, so it keeps it.
        if company_domain_taken(domain):
            domain = ""
        company = company_create(
            actor=actor, name=lead.company_name, domain=domain, owner_id=lead.owner_id, tags=tags or None
        )
        company_created = True

    contact_created = False
    if contact is None:
        first_name, last_name = _split_name(lead.name)
        contact = contact_insert(
            actor=actor,
            tags=tags or None,
            fields={
                "first_name": first_name,
                "last_name": last_name,
                "email": email,
                "phone": lead.phone,
                "company": company,
                "owner_id": lead.owner_id,
                "source": lead.source,
                "lifecycle_stage": LifecycleStage.OPPORTUNITY if create_deal else LifecycleStage.LEAD,
            },
        )
        contact_created = True
    elif contact.company_id is None and company is not None:
        contact.company = company
        contact.save(update_fields=["company", "updated_at"])

    Activity.objects.filter(lead=lead, contact__isnull=True).update(contact=contact)
    if company is not None:
        Activity.objects.filter(lead=lead, company__isnull=True).update(company=company)

    before = lead.status
    lead.status, lead.converted_at = LeadStatus.CONVERTED, timezone.now()
    lead.converted_contact, lead.converted_company = contact, company
    lead.save(update_fields=["status", "converted_at", "converted_contact", "converted_company", "updated_at"])

    deal = None
    if create_deal:
        deal = records.open_deal(lead=lead, actor=actor)
        lead.converted_deal_id = deal.pk
        lead.save(update_fields=["converted_deal"])

    payload = {
        "id": lead.pk,
        "from": before,
        "contact": contact.pk,
        "contact_created": contact_created,
        "company": company.pk if company is not None else None,
        "company_created": company_created,
        "deal": deal.pk if deal is not None else None,
    }
    outbox.record("lead.converted", subject=lead, payload=payload, actor=actor)
    return Conversion(
        lead=lead,
        contact=contact,
        contact_created=contact_created,
        company=company,
        company_created=company_created,
        deal=deal,
    )
