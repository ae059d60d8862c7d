"""The one place that resolves the organization (tenant) of a request and switches the database schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django_tenants.utils import get_public_schema_name

from config.db import connection
from config.decision_cache import versions_read_once

from .selectors import host_names_organization, organization_by_host, organization_by_id, organization_by_slug

ORGANIZATION_HEADER = "HTTP_X_ORGANIZATION"
# Set on a request that named an organization which does not resolve for it; ``rbac.policy`` answers it.
UNRESOLVED_ATTRIBUTE = "organization_unresolved"
# Health probes are about the process and its dependencies, never about an organization. They skip resolution,
# which reads Redis and PostgreSQL: /readyz must report on those without waiting for them.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


@dataclass(frozen=True)
class CredentialOrganization:
    """The organization a credential of the request is bound to; None when the credential is unknown, revoked or
    expired (the authentication step answers 401)."""

    organization_id: int | None


# Credentials bound to one organization (API keys) are issued by an app above this one; it registers how to read
# them (``IdentityConfig.ready``). A reader returns None when the request carries no credential of its kind.
_CREDENTIAL_READERS: list[Callable[..., CredentialOrganization | None]] = []


def register_credential(reader: Callable[..., CredentialOrganization | None]) -> None:
    if reader not in _CREDENTIAL_READERS:
        _CREDENTIAL_READERS.append(reader)


def _credential_organization(request) -> CredentialOrganization | None:
    for reader in _CREDENTIAL_READERS:
        found = reader(request)
        if found is not None:
            return found
    return None


def resolve_organization(request):
    """Return ``(organization, unresolved)``: the organization the request addresses, if any.

    Order: the API key (it belongs to exactly one organization; read by the registered credential readers), else
    the ``X-Organization`` header, else the request host's domain. ``unresolved`` is True when the caller named an
    organization that does not resolve (unknown, suspended, deleted, or not the one its key belongs to), by the
    header or by a ``<slug>.<TENANT_BASE_DOMAIN>`` host.
    """
    slug = request.META.get(ORGANIZATION_HEADER)
    credential = _credential_organization(request)
    if credential is not None:
        if credential.organization_id is None:
            return None, False
        organization = organization_by_id(organization_id=credential.organization_id)
        if organization is None or (slug is not None and slug.strip().lower() != organization.slug):
            return None, True
        return organization, False
    if slug is not None:
        organization = organization_by_slug(slug=slug)
        return organization, organization is None
    host = request.get_host()
    organization = organization_by_host(host=host)
    return organization, organization is None and host_names_organization(host=host)


def activate(organization) -> None:
    """Point the connection at the organization's schema (or public), issuing SET search_path only on change."""
    if organization is None:
        if connection.schema_name != get_public_schema_name():
            connection.set_schema_to_public()
    elif connection.schema_name != organization.schema_name or connection.tenant is None:
        connection.set_tenant(organization)
    else:
        connection.tenant = organization


class TenantResolutionMiddleware:
    """Resolves the organization and answers nothing itself. A request naming an organization that does not resolve
    goes on in ``public``, marked, and ``rbac.policy.OrganizationPolicy`` answers it: 401 to a caller without
    credentials (whether the organization exists is not told), else 404 ``organization_not_found``, rendered like
    the 404 of an organization the caller is no member of, to the byte. Public endpoints ignore the organization."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info in HEALTH_PATHS:
            activate(None)
            return self.get_response(request)
        organization, unresolved = resolve_organization(request)
        if organization is not None:
            # Public requests carry no ``tenant`` attribute at all: django-tenants' admin templates take its
            # presence for an organization's request and read ``request.tenant.schema_name``.
            request.tenant = organization
        elif unresolved:
            setattr(request, UNRESOLVED_ATTRIBUTE, True)
        activate(organization)
        with versions_read_once():  # the request's authorization decisions read their versions once
            return self.get_response(request)
