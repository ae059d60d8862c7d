"""Provisioning and lifecycle of organizations (tenants).

Creating a schema means running every tenant migration, which takes far longer than a sign-up should wait.
So a small pool of *standby* organizations is kept ready: real tenant rows whose schemas ``migrate_schemas``
keeps current like any other. Sign-up claims one with ``SELECT ... FOR UPDATE SKIP LOCKED`` and only falls
back to creating a schema directly when the pool is empty; a Celery task refills the pool after commit.
"""

from __future__ import annotations

import functools
import logging
import secrets
import zoneinfo
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from django_tenants.utils import get_public_schema_name, schema_context, schema_exists

from config import audit
from config.api.errors import ValidationFailed
from config.db import connection
from config.decision_cache import invalidate_decisions
from config.tasks import queue_after_commit

from .choices import OrganizationStatus
from .currencies import ISO_4217
from .errors import ConfirmationRequired, OrganizationNotFound, SlugTaken
from .models import DNS_LABEL_RE, RESERVED_SLUGS, Domain, Organization
from .signals import organization_deleted, organization_provisioned

logger = logging.getLogger(__name__)


def _new_schema_name() -> str:
    # Lower-case letters and digits only: valid as a PostgreSQL identifier and as a DNS label.
    return "t" + secrets.token_hex(10)


def _slug_from_name(name: str) -> str:
    base = slugify(name).replace("_", "-").strip("-")[:50].strip("-") or "org"
    if base in RESERVED_SLUGS:
        base = f"{base}-org"
    slug, suffix = base, 2
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{suffix}" if suffix < 20 else f"{base}-{secrets.token_hex(3)}"
        suffix += 1
    return slug


def _validate_slug(slug: str) -> str:
    import re

    from config.api.errors import ValidationFailed

    slug = slug.strip().lower()
    if not re.match(DNS_LABEL_RE, slug) or slug in RESERVED_SLUGS:
        raise ValidationFailed("Use lower-case letters, digits and inner hyphens.", field="slug", code="invalid_slug")
    if Organization.objects.filter(slug=slug).exists():
        raise SlugTaken(field="slug")
    return slug


def _create_schema(organization: Organization) -> None:
    """Create and migrate the organization's schema on this connection (rolled back with the transaction)."""
    organization.create_schema(check_if_exists=False, verbosity=0)


def _claim_standby() -> Organization | None:
    return (
        Organization.objects.select_for_update(skip_locked=True)
        .filter(status=OrganizationStatus.STANDBY)
        .order_by("created_at", "pk")
        .first()
    )


@transaction.atomic
def organization_create(*, name: str, slug: str | None = None, use_pool: bool = True) -> Organization:
    """Create an active organization with its schema, claiming a standby one when the pool has any, and tell the
    apps above (``organization_provisioned``). Runs in the public schema whatever organization the request named
    (a sign-up may carry an ``X-Organization`` header)."""
    name = name.strip()
    slug = _validate_slug(slug) if slug else _slug_from_name(name)
    now = timezone.now()
    with schema_context(get_public_schema_name()):
        organization = _claim_standby() if use_pool else None
        if organization is not None:
            organization.name, organization.slug = name, slug
            organization.status, organization.activated_at = OrganizationStatus.ACTIVE, now
            organization.save(update_fields=["name", "slug", "status", "activated_at"])
        else:
            organization = Organization(
                schema_name=_new_schema_name(), name=name, slug=slug, status=OrganizationStatus.ACTIVE, activated_at=now
            )
            organization.save()
            _create_schema(organization)
        Domain.objects.create(domain=f"{slug}.{settings.TENANT_BASE_DOMAIN}", tenant=organization, is_primary=True)
    organization_provisioned.send(sender=Organization, organization=organization)
    from .tasks import refill_standby_pool_task

    queue_after_commit(refill_standby_pool_task)  # when the broker is down, beat refills the pool later
    return organization


def standby_pool_refill(*, size: int | None = None) -> int:
    """Provision standby organizations until the pool holds ``size``; returns how many were created."""
    size = settings.TENANT_STANDBY_POOL_SIZE if size is None else size
    created = 0
    while Organization.objects.filter(status=OrganizationStatus.STANDBY).count() < size:
        with transaction.atomic():
            organization = Organization(schema_name=_new_schema_name(), status=OrganizationStatus.STANDBY)
            organization.save()
            _create_schema(organization)
        created += 1
    return created


def _set_status(organization: Organization, status: str, **fields) -> Organization:
    locked = Organization.objects.select_for_update().filter(pk=organization.pk).first()
    if locked is None or locked.status == OrganizationStatus.STANDBY:
        raise OrganizationNotFound()
    locked.status = status
    for field, value in fields.items():
        setattr(locked, field, value)
    locked.save(update_fields=["status", *fields])
    return locked


@transaction.atomic
def organization_suspend(*, organization: Organization) -> Organization:
    """Suspend: the organization's data stays, but no request resolves to it."""
    return _set_status(organization, OrganizationStatus.SUSPENDED)


@transaction.atomic
def organization_reactivate(*, organization: Organization) -> Organization:
    return _set_status(organization, OrganizationStatus.ACTIVE, deleted_at=None)


@transaction.atomic
def organization_delete(*, organization: Organization, actor=None) -> Organization:
    """Delete in two steps: suspend now and mark for purge; the schema is dropped after the grace period
    (``purge_deleted_organizations_task``). Audited; from the next request on, nothing resolves to it."""
    before = organization.status
    organization = _set_status(organization, OrganizationStatus.DELETED, deleted_at=timezone.now())
    audit.record(
        organization=organization,
        actor=actor,
        action="organization.deleted",
        target_type="organization",
        target_id=organization.pk,
        before={"status": before},
        after={"status": organization.status, "purge_after": purge_after(organization).isoformat()},
    )
    invalidate_decisions(organization_id=organization.pk)
    organization_deleted.send(sender=Organization, organization=organization)
    return organization


def organization_delete_confirmed(*, organization: Organization, actor, confirmation: str | None) -> Organization:
    """The owner's deletion: ``confirmation`` must be the organization's slug, typed back (400
    ``confirmation_required`` otherwise), then as :func:`organization_delete`."""
    if not confirmation or confirmation.strip().lower() != organization.slug:
        raise ConfirmationRequired(
            f"Send confirm={organization.slug} to delete the organization.", extra={"confirm": organization.slug}
        )
    return organization_delete(organization=organization, actor=actor)


def purge_after(organization: Organization):
    """When a deleted organization's schema may be dropped (``TENANT_PURGE_AFTER_DAYS`` after its deletion)."""
    return (organization.deleted_at or timezone.now()) + timedelta(days=settings.TENANT_PURGE_AFTER_DAYS)


# --- settings: what the organization's people edit ---

SETTINGS_FIELDS = ("name", "time_zone", "currency", "logo_url")
LOGO_URL_MAX_LENGTH = 2000
_https_url = URLValidator(schemes=["https"])


@functools.cache
def time_zone_names() -> frozenset[str]:
    """The IANA zone names this system knows (read once: ``available_timezones()`` walks the zone files)."""
    return frozenset(zoneinfo.available_timezones())


def _clean_settings(changes: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The changes normalized, and an error per field that is not acceptable."""
    cleaned: dict[str, Any] = {}
    errors: list[dict[str, str]] = []

    def refuse(field: str, code: str, detail: str) -> None:
        errors.append({"field": field, "code": code, "detail": detail})

    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            refuse("name", "blank", "The organization needs a name.")
        elif len(name) > 200:
            refuse("name", "max_length", "At most 200 characters.")
        cleaned["name"] = name
    if "time_zone" in changes:
        zone = (changes["time_zone"] or "").strip()
        if zone not in time_zone_names():
            refuse("time_zone", "invalid_time_zone", "Use an IANA time zone name, e.g. Europe/Paris.")
        cleaned["time_zone"] = zone
    if "currency" in changes:
        currency = (changes["currency"] or "").strip().upper()
        if currency not in ISO_4217:
            refuse("currency", "invalid_currency", "Use an ISO 4217 currency code, e.g. EUR.")
        cleaned["currency"] = currency
    if "logo_url" in changes:
        url = (changes["logo_url"] or "").strip()
        if url:
            try:
                _https_url(url)
                valid = "@" not in url.split("//", 1)[1].split("/", 1)[0] and len(url) <= LOGO_URL_MAX_LENGTH
            except ValidationError:
                valid = False
            if not valid:
                refuse(
                    "logo_url",
                    "invalid_logo_url",
                    f"Use an https:// URL without credentials, at most {LOGO_URL_MAX_LENGTH} characters.",
                )
        cleaned["logo_url"] = url
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"not an organization setting: {', '.join(sorted(unknown))}")
    return cleaned, errors


@transaction.atomic
def organization_update_settings(*, organization: Organization, actor, **changes: Any) -> Organization:
    """Change the organization's name, time zone (IANA), default currency (ISO 4217) or logo URL (https). All or
    nothing: any invalid field refuses the whole change (400 ``validation_error``, each field with its code).
    Audited with the fields that changed; resolution caches forget the organization (``tenants.signals``), so the
    next request, and the analytics, campaigns and exports it runs, read the new values."""
    cleaned, errors = _clean_settings(changes)
    if errors:
        raise ValidationFailed(errors[0]["detail"] if len(errors) == 1 else None, extra={"errors": errors})
    locked = Organization.objects.select_for_update().filter(pk=organization.pk).first()
    if locked is None or locked.status != OrganizationStatus.ACTIVE:
        raise OrganizationNotFound()
    changed = [field for field, value in cleaned.items() if getattr(locked, field) != value]
    if not changed:
        return locked
    before = {field: getattr(locked, field) for field in changed}
    for field in changed:
        setattr(locked, field, cleaned[field])
    locked.save(update_fields=changed)
    audit.record(
        organization=locked,
        actor=actor,
        action="organization.updated",
        target_type="organization",
        target_id=locked.pk,
        before=before,
        after={field: cleaned[field] for field in changed},
    )
    return locked


def organization_purge(*, organization: Organization) -> None:
    """Drop a deleted organization's schema and its control-plane rows. Irreversible."""
    with transaction.atomic():
        locked = Organization.objects.select_for_update().filter(pk=organization.pk).first()
        if locked is None:
            return
        if locked.status != OrganizationStatus.DELETED:
            raise OrganizationNotFound("Only a deleted organization can be purged.")
        if connection.schema_name != "public":
            connection.set_schema_to_public()
        with connection.cursor() as cursor:  # checks deferred by rows this transaction wrote would block the DROP
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if schema_exists(locked.schema_name):
            locked.delete(force_drop=True)
        else:
            super(Organization, locked).delete()


def purge_due_organizations(*, now=None) -> list[str]:
    """Purge every organization deleted longer ago than ``TENANT_PURGE_AFTER_DAYS``; returns their schemas."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TENANT_PURGE_AFTER_DAYS)
    due = list(Organization.objects.filter(status=OrganizationStatus.DELETED, deleted_at__lte=cutoff))
    for organization in due:
        organization_purge(organization=organization)
    return [organization.schema_name for organization in due]
