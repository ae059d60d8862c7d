"""Builders for test data. They go through the services, like production code does."""

from __future__ import annotations

import uuid

from identity.models import User
from rbac.actor import SystemActor
from rbac.choices import SystemRole
from rbac.models import Membership
from rbac.services import membership_create
from tenants.models import Organization
from tenants.services import organization_create

DEFAULT_PASSWORD = "Correct-Horse-Battery-9"

#: The actor of data-plane services called by tests to build or change records, as tasks do.
SYSTEM = SystemActor("tests")


def reference_ids(fields: dict) -> dict:
    """Builders take records (``contact=c``); services take their ids (``contact_id=c.pk``)."""
    for name in ("contact", "company", "lead", "deal"):
        if name in fields:
            record = fields.pop(name)
            fields[f"{name}_id"] = record.pk if record is not None else None
    return fields


def make_user(*, email: str | None = None, password: str = DEFAULT_PASSWORD, **fields) -> User:
    from identity.services import user_create

    email = email or f"user-{uuid.uuid4().hex[:10]}@example.test"
    return user_create(
        email=email,
        password=password,
        first_name=fields.get("first_name", "Test"),
        last_name=fields.get("last_name", "User"),
    )


def make_organization(*, name: str = "Test Org", slug: str | None = None, plan: str = "enterprise") -> Organization:
    """An organization on ``plan`` (a trial when the plan has trial days, as at sign-up)."""
    from billing.services import subscription_start

    organization = organization_create(name=name, slug=slug)
    subscription_start(organization=organization, plan_code=plan)
    return organization


def make_member(*, user: User, organization: Organization, role: str = SystemRole.SALES_REP) -> Membership:
    return membership_create(user=user, organization=organization, role=role)
