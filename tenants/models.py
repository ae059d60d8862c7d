from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from .choices import OrganizationStatus

# DNS label: lower-case letters, digits and inner hyphens. No underscores: a host with "_" does not resolve.
DNS_LABEL_RE = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
dns_label_validator = RegexValidator(DNS_LABEL_RE, "Use lower-case letters, digits and inner hyphens only.")
# Sub-domains of the base domain that are the product's own, never an organization's.
RESERVED_SLUGS = frozenset({"www", "api", "admin", "app", "public", "static", "mail", "docs", "status", "help"})


class Organization(TenantMixin):
    """A customer organization: the tenant. Its data lives in the PostgreSQL schema ``schema_name``."""

    # Nullable while the schema waits in the standby pool, unique once claimed.
    slug = models.CharField(max_length=63, unique=True, null=True, blank=True, validators=[dns_label_validator])
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=OrganizationStatus.choices, default=OrganizationStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Settings the organization's people edit (PATCH /organizations/current/, validated in tenants.settings).
    # An IANA zone name; empty: the deployment's TIME_ZONE (analytics, campaigns and exports read it so).
    time_zone = models.CharField(max_length=64, blank=True, default="")
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217 code: the default of new pipelines.")
    logo_url = models.URLField(max_length=2000, blank=True, default="")

    # Schemas are created by tenants.services, never implicitly by save().
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["status"], name="org_status_idx")]

    def __str__(self) -> str:
        return self.name or self.schema_name

    @property
    def is_active(self) -> bool:
        return self.status == OrganizationStatus.ACTIVE

    @property
    def effective_time_zone(self) -> str:
        """The zone the organization's dates are in: its own, else the deployment's ``TIME_ZONE``."""
        return self.time_zone or settings.TIME_ZONE


class Domain(DomainMixin):
    """A host name that resolves to an organization (``<slug>.<TENANT_BASE_DOMAIN>`` or a custom one)."""

    def __str__(self) -> str:
        return self.domain
