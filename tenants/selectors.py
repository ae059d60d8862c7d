"""Reads of the tenant registry. Resolution is cached in the control-plane cache and invalidated on change."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.db.models import QuerySet

from .choices import OrganizationStatus
from .models import DNS_LABEL_RE, RESERVED_SLUGS, Domain, Organization

CACHE_TTL_SECONDS = 300
_MISSING = "-"  # cached "no such organization", so unknown slugs do not reach the database each time


def _cache():
    return caches["control"]


def _slug_key(slug: str) -> str:
    return f"tenants:slug:{slug}"


def _host_key(host: str) -> str:
    return f"tenants:host:{host}"


def _cached(key: str, load) -> Organization | None:
    cache = _cache()
    value = cache.get(key)
    if value is None:
        organization = load()
        cache.set(key, organization if organization is not None else _MISSING, CACHE_TTL_SECONDS)
        return organization
    return None if value == _MISSING else value


def organization_by_slug(*, slug: str) -> Organization | None:
    """The active organization with this slug, or None (unknown, suspended, deleted or in standby)."""
    slug = slug.strip().lower()
    if not slug or len(slug) > 63:
        return None

    def load():
        return Organization.objects.filter(slug=slug, status=OrganizationStatus.ACTIVE).first()

    return _cached(_slug_key(slug), load)


def _bare_host(host: str) -> str:
    return host.split(":", 1)[0].strip().lower().rstrip(".")


def host_names_organization(*, host: str) -> bool:
    """Is ``host`` of the form ``<slug>.<TENANT_BASE_DOMAIN>`` (a slug that is not one of the product's reserved
    sub-domains)? Such a host names an organization, whether one has that slug or not."""
    label, dot, rest = _bare_host(host).partition(".")
    base = settings.TENANT_BASE_DOMAIN.strip().lower().strip(".")
    return bool(dot) and rest == base and label not in RESERVED_SLUGS and re.match(DNS_LABEL_RE, label) is not None


def organization_by_host(*, host: str) -> Organization | None:
    """The active organization one of whose domains is ``host``, or None."""
    host = _bare_host(host)
    if not host or len(host) > 253:
        return None

    def load():
        domain = (
            Domain.objects.select_related("tenant")
            .filter(domain=host, tenant__status=OrganizationStatus.ACTIVE)
            .first()
        )
        return domain.tenant if domain else None

    return _cached(_host_key(host), load)


def _id_key(organization_id: int) -> str:
    return f"tenants:id:{organization_id}"


def organization_by_id(*, organization_id: int) -> Organization | None:
    """The active organization with this id, or None (an API key names its organization by id)."""

    def load():
        return Organization.objects.filter(pk=organization_id, status=OrganizationStatus.ACTIVE).first()

    return _cached(_id_key(organization_id), load)


def forget_organization(*, slugs: list[str | None], hosts: list[str | None], ids: tuple[int, ...] = ()) -> None:
    """Drop cached resolutions now and again after commit, so no reader caches the pre-commit state."""
    keys = [_slug_key(s) for s in slugs if s] + [_host_key(h.lower()) for h in hosts if h]
    keys += [_id_key(pk) for pk in ids if pk]
    if keys:
        _cache().delete_many(keys)
        transaction.on_commit(lambda: _cache().delete_many(keys))


def active_organizations() -> QuerySet[Organization]:
    return Organization.objects.filter(status=OrganizationStatus.ACTIVE)


def tenant_organizations() -> QuerySet[Organization]:
    """Every organization that owns a live schema (active, suspended or in standby), for fan-out work."""
    return Organization.objects.exclude(status=OrganizationStatus.DELETED)


def current_organization() -> Organization:
    """The organization whose schema this connection works in (plan limits count against it); services of the
    data plane call it, and it refuses to answer in ``public``."""
    tenant = getattr(connection, "tenant", None)
    if tenant is None or getattr(tenant, "pk", None) is None:
        raise RuntimeError("this service runs in an organization's schema")
    return tenant
