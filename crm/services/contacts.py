"""Companies and contacts: create, edit, delete; contacts' activation. Merging is in :mod:`.merging`."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from billing.features import Limit
from billing.services import enforce_limit
from integrations import outbox
from rbac.actor import Actor, keep_in_reach, require_actor
from tenants.selectors import current_organization

from .. import custom_fields
from ..choices import ContactStatus, RecordType
from ..errors import DuplicateDomain, DuplicateEmail
from ..models import Company, Contact
from ..permissions import COMPANY_UPDATE, CONTACT_UPDATE
from ..records import UNSET, given, owner_for, record_event, record_update, set_tags

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def normalize_email(value: str | None) -> str:
    return (value or "").strip().lower()


def normalize_domain(value: str | None) -> str:
    """``https://www.Example.com/about`` → ``example.com``."""
    domain = _SCHEME.sub("", (value or "").strip().lower())
    domain = domain.split("/", 1)[0].split("?", 1)[0].split("@")[-1].split(":", 1)[0].strip(".")
    return domain.removeprefix("www.")


# The unique rules of CRM records: a contact's e-mail, a company's domain (decision 0007). Each is a unique index,
# checked before writing for a clear answer, and read back from the index when a concurrent write got there first.
_UNIQUE = {"contact_email_unique": DuplicateEmail, "company_domain_unique": DuplicateDomain}


def _save_unique(instance: Company | Contact, update_fields: list[str] | None = None) -> None:
    """Save; a concurrent write of the same e-mail or domain (a unique index) is the same 409 as a known one."""
    try:
        with transaction.atomic():
            instance.save(update_fields=update_fields)
    except IntegrityError as exc:
        for constraint, error in _UNIQUE.items():
            if constraint in str(exc):
                raise error() from None
        raise


# --- companies ---


def company_domain_taken(domain: str, *, exclude_pk: int | None = None) -> bool:
    """Whether a company (any, seen by the caller or not) has ``domain``, whatever the case."""
    if not domain:
        return False
    taken = Company.objects.exclude(domain="").alias(lower_domain=Lower("domain")).filter(lower_domain=domain.lower())
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    return taken.exists()


def _check_domain_free(domain: str, *, exclude_pk: int | None = None) -> None:
    """A company domain is unique among companies, whatever the case (409 ``duplicate_domain``)."""
    if company_domain_taken(domain, exclude_pk=exclude_pk):
        raise DuplicateDomain()


def _company_fields(**values: Any) -> dict[str, Any]:
    fields = given(**values)
    if "domain" in fields:
        fields["domain"] = normalize_domain(fields["domain"])
    if "name" in fields:
        fields["name"] = fields["name"].strip()
    return fields


@transaction.atomic
def company_create(
    *,
    actor: Actor,
    name: str,
    domain: str = UNSET,
    industry: str = UNSET,
    size: str = UNSET,
    phone: str = UNSET,
    street: str = UNSET,
    city: str = UNSET,
    region: str = UNSET,
    postal_code: str = UNSET,
    country: str = UNSET,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Company:
    """A new company. Its domain is stored normalized (``example.com``) and is unique among companies, whatever the
    case (409 ``duplicate_domain``)."""
    require_actor(actor)
    fields = _company_fields(
        name=name,
        domain=domain,
        industry=industry,
        size=size,
        phone=phone,
        street=street,
        city=city,
        region=region,
        postal_code=postal_code,
        country=country,
    )
    if "domain" in fields:
        _check_domain_free(fields["domain"])
    company = Company(owner_id=owner_for(actor, owner_id), **fields)
    company.custom_fields = custom_fields.clean_values(RecordType.COMPANY, custom_fields_values)
    keep_in_reach(actor, COMPANY_UPDATE, company.owner_id)
    _save_unique(company)
    set_tags(company, tags, actor=actor)
    record_event("created", company, actor=actor)
    return company


@transaction.atomic
def company_update(
    *,
    company: Company,
    actor: Actor,
    name: str = UNSET,
    domain: str = UNSET,
    industry: str = UNSET,
    size: str = UNSET,
    phone: str = UNSET,
    street: str = UNSET,
    city: str = UNSET,
    region: str = UNSET,
    postal_code: str = UNSET,
    country: str = UNSET,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Company:
    require_actor(actor)
    company = Company.objects.select_for_update().get(pk=company.pk)
    fields = _company_fields(
        name=name,
        domain=domain,
        industry=industry,
        size=size,
        phone=phone,
        street=street,
        city=city,
        region=region,
        postal_code=postal_code,
        country=country,
        owner_id=owner_id,
    )
    if "domain" in fields:
        _check_domain_free(fields["domain"], exclude_pk=company.pk)
    changes = record_update(
        company,
        actor=actor,
        permission=COMPANY_UPDATE,
        record_type=RecordType.COMPANY,
        fields=fields,
        custom_fields_values=custom_fields_values,
        tags=tags,
        save=_save_unique,
    )
    record_event("updated", company, actor=actor, changes=changes)
    return company


@transaction.atomic
def company_delete(*, company: Company, actor: Actor) -> None:
    """Delete a company; its contacts stay (without a company), its activities go with it."""
    require_actor(actor)
    record_event("deleted", company, actor=actor)
    company.delete()


# --- contacts ---


def _check_email_free(email: str, *, exclude_pk: int | None = None) -> None:
    if not email:
        return
    taken = Contact.objects.filter(email=email)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise DuplicateEmail()


def contact_insert(
    *,
    actor: Actor,
    fields: dict[str, Any],
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Contact:
    """Insert a contact with these model ``fields`` (the caller holds the transaction and has checked the owner):
    e-mail normalized and free, plan limit respected. Contact creation and lead conversion share it."""
    require_actor(actor)
    fields = {**fields, "email": normalize_email(fields.get("email"))}
    _check_email_free(fields["email"])
    enforce_limit(organization=current_organization(), limit=Limit.CONTACTS)
    contact = Contact(**fields)
    contact.custom_fields = custom_fields.clean_values(RecordType.CONTACT, custom_fields_values)
    _save_unique(contact)
    set_tags(contact, tags, actor=actor)
    record_event("created", contact, actor=actor)
    return contact


@transaction.atomic
def contact_create(
    *,
    actor: Actor,
    first_name: str = UNSET,
    last_name: str = UNSET,
    email: str = UNSET,
    phone: str = UNSET,
    job_title: str = UNSET,
    company_id: int | None = UNSET,
    status: str = UNSET,
    lifecycle_stage: str = UNSET,
    source: str = UNSET,
    do_not_contact: bool = UNSET,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Contact:
    """A new contact. Its e-mail is stored lower-cased and is unique within the organization (409
    ``duplicate_email``); contacts count against the plan's contact limit."""
    require_actor(actor)
    owner = owner_for(actor, owner_id)
    keep_in_reach(actor, CONTACT_UPDATE, owner)
    fields = given(
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=phone,
        job_title=job_title,
        company_id=company_id,
        status=status,
        lifecycle_stage=lifecycle_stage,
        source=source,
        do_not_contact=do_not_contact,
    )
    return contact_insert(
        actor=actor, fields={**fields, "owner_id": owner}, tags=tags, custom_fields_values=custom_fields_values
    )


@transaction.atomic
def contact_update(
    *,
    contact: Contact,
    actor: Actor,
    first_name: str = UNSET,
    last_name: str = UNSET,
    email: str = UNSET,
    phone: str = UNSET,
    job_title: str = UNSET,
    company_id: int | None = UNSET,
    status: str = UNSET,
    lifecycle_stage: str = UNSET,
    source: str = UNSET,
    do_not_contact: bool = UNSET,
    owner_id: int | None = UNSET,
    tags: list[str] | None = None,
    custom_fields_values: dict[str, Any] | None = None,
) -> Contact:
    require_actor(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    fields = given(
        first_name=first_name,
        last_name=last_name,
        email=email if email is UNSET else normalize_email(email),
        phone=phone,
        job_title=job_title,
        company_id=company_id,
        status=status,
        lifecycle_stage=lifecycle_stage,
        source=source,
        do_not_contact=do_not_contact,
        owner_id=owner_id,
    )
    if "email" in fields:
        _check_email_free(fields["email"], exclude_pk=contact.pk)
    changes = record_update(
        contact,
        actor=actor,
        permission=CONTACT_UPDATE,
        record_type=RecordType.CONTACT,
        fields=fields,
        custom_fields_values=custom_fields_values,
        tags=tags,
        save=_save_unique,
    )
    record_event("updated", contact, actor=actor, changes=changes)
    return contact


@transaction.atomic
def contact_delete(*, contact: Contact, actor: Actor) -> None:
    """Delete a contact with its activities; deals and converted leads keep their other references."""
    require_actor(actor)
    record_event("deleted", contact, actor=actor)
    contact.delete()


def _set_status(contact: Contact, actor: Actor, status: str, event_type: str) -> Contact:
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    if contact.status == status:
        return contact  # already there: nothing changes, nothing is recorded
    before = contact.status
    contact.status = status
    contact.save(update_fields=["status", "updated_at"])
    outbox.record(event_type, subject=contact, payload={"id": contact.pk, "from": before}, actor=actor)
    return contact


@transaction.atomic
def contact_activate(*, contact: Contact, actor: Actor) -> Contact:
    require_actor(actor)
    return _set_status(contact, actor, ContactStatus.ACTIVE, "contact.activated")


@transaction.atomic
def contact_deactivate(*, contact: Contact, actor: Actor) -> Contact:
    require_actor(actor)
    return _set_status(contact, actor, ContactStatus.INACTIVE, "contact.deactivated")
