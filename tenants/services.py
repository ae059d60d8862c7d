"""Provisioning and lifecycle of organizations (tenants).

Creating a schema means running every tenant migration, which takes far longer than a sign-up should wait.
So a small pool of *standby* organizations is kept ready: real tenant rows whose schemas ``migrate_schemas``
keeps current like any other. Sign-up claims one with ``SELECT ... FOR UPDATE SKIP LOCKED`` and only falls
back to creating a schema directly when the pool is empty; a Celery task refills the pool after commit.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from django_tenants.utils import get_public_schema_name, schema_context, schema_exists

from config.db import connection
from config.tasks import queue_after_commit

from .choices import OrganizationStatus
from .errors import OrganizationNotFound, SlugTaken
from .models import DNS_LABEL_RE, RESERVED_SLUGS, Domain, Organization
from .signals import organization_provisioned

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
def organization_delete(*, organization: Organization) -> Organization:
    """Delete in two steps: suspend now and mark for purge; the schema is dropped after the grace period."""
    return _set_status(organization, OrganizationStatus.DELETED, deleted_at=timezone.now())


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
