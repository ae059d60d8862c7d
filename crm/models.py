"""CRM records. They live in the organization's schema: no organization column, the schema is the tenant.

Owners are users of the control plane; the reference is kept without a database constraint because
users live in another schema (a user is deactivated, not deleted, so the id stays meaningful).
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from config.api.references import person_name
from rbac.actor import OwnedQuerySet

from .choices import (
    ActivityKind,
    CompanySize,
    ContactStatus,
    CustomFieldType,
    DedupePolicy,
    ImportStatus,
    LeadSource,
    LeadStatus,
    LifecycleStage,
    Priority,
    RecordType,
)


def owner_field():
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )


OwnedManager = models.Manager.from_queryset(OwnedQuerySet)


class Tag(models.Model):
    name = models.CharField(max_length=50)
    color = models.CharField(max_length=7, blank=True, help_text="Hex color, e.g. #3366ff")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="tag_name_ci_unique")]

    def __str__(self) -> str:
        return self.name


class CustomField(models.Model):
    """An organization-defined field on one record type. Values live in each record's ``custom_fields``."""

    record_type = models.CharField(max_length=16, choices=RecordType.choices)
    key = models.SlugField(max_length=64, help_text="Stable key used in the API, e.g. 'contract_tier'.")
    label = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=CustomFieldType.choices)
    required = models.BooleanField(default=False)
    choices = models.JSONField(default=list, blank=True, help_text="Allowed values of a single-choice field.")
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["record_type", "position", "pk"]
        constraints = [models.UniqueConstraint(fields=["record_type", "key"], name="custom_field_key_unique")]

    def __str__(self) -> str:
        return f"{self.record_type}.{self.key}"


class Record(models.Model):
    """Fields every owned CRM record has."""

    owner = owner_field()
    tags = models.ManyToManyField(Tag, blank=True, related_name="+")
    custom_fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = OwnedManager()

    class Meta:
        abstract = True


class Company(Record):
    name = models.CharField(max_length=200)
    domain = models.CharField(
        max_length=253, blank=True, db_index=True, help_text="Normalized: example.com; unique when present."
    )
    industry = models.CharField(max_length=100, blank=True)
    size = models.CharField(max_length=16, choices=CompanySize.choices, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    street = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")

    class Meta:
        ordering = ["name", "pk"]
        verbose_name_plural = "companies"
        constraints = [
            # One company per domain, whatever the case (services store it normalized: lower-case, no www.).
            models.UniqueConstraint(Lower("domain"), condition=~Q(domain=""), name="company_domain_unique"),
        ]
        indexes = [models.Index(Lower("name"), name="company_name_ci_idx")]

    def __str__(self) -> str:
        return self.name


class Contact(Record):
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254, blank=True, help_text="Normalized; unique when present.")
    phone = models.CharField(max_length=40, blank=True)
    job_title = models.CharField(max_length=150, blank=True)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts")
    status = models.CharField(max_length=16, choices=ContactStatus.choices, default=ContactStatus.ACTIVE)
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.LEAD)
    source = models.CharField(max_length=32, choices=LeadSource.choices, blank=True)
    do_not_contact = models.BooleanField(default=False)

    class Meta:
        ordering = ["last_name", "first_name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["email"], condition=~Q(email=""), name="contact_email_unique"),
        ]
        indexes = [models.Index(fields=["status", "owner"], name="contact_status_owner_idx")]

    def __str__(self) -> str:
        return self.name_of(self.first_name, self.last_name, self.email)

    @staticmethod
    def name_of(first_name: str, last_name: str, email: str) -> str:
        """What a contact is called (its ``str()``, and its references' name): its full name, else its e-mail."""
        return person_name(first_name, last_name) or email


class Lead(Record):
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    company_name = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=32, choices=LeadSource.choices, blank=True)
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.NEW)
    score = models.PositiveSmallIntegerField(default=0)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.MEDIUM)
    estimated_value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    disqualified_reason = models.CharField(max_length=500, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    converted_contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    converted_company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    converted_deal = models.ForeignKey(
        "pipelines.Deal", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="lead_status_created_idx"),
            models.Index(fields=["owner", "-created_at"], name="lead_owner_created_idx"),
            models.Index(fields=["email"], name="lead_email_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class Activity(models.Model):
    kind = models.CharField(max_length=16, choices=ActivityKind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    owner = owner_field()
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="activities")
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.CASCADE, related_name="activities")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="activities")
    deal = models.ForeignKey(
        "pipelines.Deal", null=True, blank=True, on_delete=models.CASCADE, related_name="activities"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedManager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["owner", "due_at"], condition=Q(completed_at=None), name="activity_open_tasks_idx"),
        ]

    def __str__(self) -> str:
        return self.subject


class ImportJob(models.Model):
    """An uploaded file of contacts, companies or leads, processed in the background row by row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    record_type = models.CharField(max_length=16, choices=RecordType.choices)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_filename = models.CharField(max_length=255)
    file_format = models.CharField(max_length=8, help_text="csv or xlsx")
    mapping = models.JSONField(default=dict, help_text="Column header → record field.")
    dedupe_policy = models.CharField(max_length=16, choices=DedupePolicy.choices, default=DedupePolicy.SKIP)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors_file = models.FileField(upload_to="imports/errors/%Y/%m/", blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    created_by = owner_field()
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import of {self.original_filename}"
