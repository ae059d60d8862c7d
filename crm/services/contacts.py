"""Companies and contacts: create, edit, delete; contacts' activation. Merging is in :mod:`.merging`."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from billing.features import Limit
from billing.services import enforce_limit
from integrations import outbox
from rbac.actor import Actor, require_actor, user_of
from tenants.selectors import current_organization

from .. import custom_fields
from ..choices import ContactStatus, RecordType
from ..errors import DuplicateDomain, DuplicateEmail
from ..models import Company, Contact
from ._common import apply_update, keep_in_reach, set_tags

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def normalize_email(value: str | None) -> str:
    return (value or "").strip().lower()


def normalize_domain(value: str | None) -> str:
    """``https://www.Example.com/about`` → ``example.com``."""
    domain = _SCHEME.sub("", (value or "").strip().lower())
    domain = domain.split("/", 1)[0].split("?", 1)[0].split("@")[-1].split(":", 1)[0].strip(".")
    return domain.removeprefix("www.")


def _tag_change(instance, names: list[str] | None, change: dict, *, actor: Actor) -> None:
    """Set the tags; when they change, the event's ``changes.tags`` is the new list (the catalogue's schema)."""
    if names is None:
        return
    before = sorted(tag.name for tag in instance.tags.all())
    after = set_tags(instance, names, actor=actor)
    if before != after:
        change["tags"] = after


def _save_changes(instance, change: dict) -> None:
    model = type(instance)
    fields = [model._meta.get_field(name).name for name in change if name != "tags"]
    if fields:
        _save_unique(instance, update_fields=[*fields, "updated_at"])


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


@transaction.atomic
def company_create(
    *, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields
) -> Company:
    """A new company. Its domain is stored normalized (``example.com``) and is unique among companies, whatever the
    case (409 ``duplicate_domain``)."""
    require_actor(actor)
    fields.setdefault("owner_id", user_of(actor))
    if "domain" in fields:
        fields["domain"] = normalize_domain(fields["domain"])
        _check_domain_free(fields["domain"])
    fields["name"] = fields["name"].strip()
    company = Company(**fields)
    company.custom_fields = custom_fields.clean_values(RecordType.COMPANY, custom_fields_values)
    keep_in_reach(actor, "crm.company.update", company.owner_id)
    _save_unique(company)
    set_tags(company, tags, actor=actor)
    outbox.record("company.created", subject=company, payload=outbox.snapshot(company), actor=actor)
    return company


@transaction.atomic
def company_update(
    *, company: Company, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields
) -> Company:
    require_actor(actor)
    company = Company.objects.select_for_update().get(pk=company.pk)
    if "domain" in fields:
        fields["domain"] = normalize_domain(fields["domain"])
        _check_domain_free(fields["domain"], exclude_pk=company.pk)
    if "name" in fields:
        fields["name"] = fields["name"].strip()
    change = apply_update(
        company,
        record_type=RecordType.COMPANY,
        permission="crm.company.update",
        actor=actor,
        fields=fields,
        custom_fields_values=custom_fields_values,
    )
    _save_changes(company, change)
    _tag_change(company, tags, change, actor=actor)
    if change:
        outbox.record("company.updated", subject=company, payload={"id": company.pk, "changes": change}, actor=actor)
    return company


@transaction.atomic
def company_delete(*, company: Company, actor: Actor) -> None:
    """Delete a company; its contacts stay (without a company), its activities go with it."""
    require_actor(actor)
    outbox.record("company.deleted", subject=company, payload=outbox.snapshot(company), actor=actor)
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


# The unique rules of CRM records: a contact's e-mail, a company's domain (decision 0007). Each is a unique index,
# checked before writing for a clear answer, and read back from the index when a concurrent write got there first.
_UNIQUE = {"contact_email_unique": DuplicateEmail, "company_domain_unique": DuplicateDomain}


def _save_unique(instance, **kwargs) -> None:
    """Save; a concurrent write of the same e-mail or domain (a unique index) is the same 409 as a known one."""
    try:
        with transaction.atomic():
            instance.save(**kwargs)
    except IntegrityError as exc:
        for constraint, error in _UNIQUE.items():
            if constraint in str(exc):
                raise error() from None
        raise


def contact_insert(*, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields):
    """Insert a contact (the caller holds the transaction): e-mail normalized and free, plan limit respected."""
    require_actor(actor)
    fields["email"] = normalize_email(fields.get("email"))
    _check_email_free(fields["email"])
    enforce_limit(organization=current_organization(), limit=Limit.CONTACTS)
    contact = Contact(**fields)
    contact.custom_fields = custom_fields.clean_values(RecordType.CONTACT, custom_fields_values)
    _save_unique(contact)
    set_tags(contact, tags, actor=actor)
    outbox.record("contact.created", subject=contact, payload=outbox.snapshot(contact), actor=actor)
    return contact


@transaction.atomic
def contact_create(
    *, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields
) -> Contact:
    """A new contact. Its e-mail is stored lower-cased and is unique within the organization (409
    ``duplicate_email``); contacts count against the plan's contact limit."""
    require_actor(actor)
    fields.setdefault("owner_id", user_of(actor))
    keep_in_reach(actor, "crm.contact.update", fields["owner_id"])
    return contact_insert(actor=actor, tags=tags, custom_fields_values=custom_fields_values, **fields)


@transaction.atomic
def contact_update(
    *, contact: Contact, actor: Actor, tags: list[str] | None = None, custom_fields_values: dict | None = None, **fields
) -> Contact:
    require_actor(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    if "email" in fields:
        fields["email"] = normalize_email(fields["email"])
        _check_email_free(fields["email"], exclude_pk=contact.pk)
    change = apply_update(
        contact,
        record_type=RecordType.CONTACT,
        permission="crm.contact.update",
        actor=actor,
        fields=fields,
        custom_fields_values=custom_fields_values,
    )
    if change:
        fields_changed = [Contact._meta.get_field(name).name for name in change]
        _save_unique(contact, update_fields=[*fields_changed, "updated_at"])
    _tag_change(contact, tags, change, actor=actor)
    if change:
        outbox.record("contact.updated", subject=contact, payload={"id": contact.pk, "changes": change}, actor=actor)
    return contact


@transaction.atomic
def contact_delete(*, contact: Contact, actor: Actor) -> None:
    """Delete a contact with its activities; deals and converted leads keep their other references."""
    require_actor(actor)
    outbox.record("contact.deleted", subject=contact, payload=outbox.snapshot(contact), actor=actor)
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
