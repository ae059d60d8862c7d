"""Builders for CRM records: they go through the services as the system (``SYSTEM``), in the tenant's schema."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection

from crm import services
from crm.models import Activity, Company, Contact, Lead
from integrations.models import OutboxEvent
from tests.factories import SYSTEM, reference_ids

_numbers = itertools.count(1)


@pytest.fixture
def make(in_tenant):
    """``make.contact(org, owner=user, **fields)``, and ``company``, ``lead``, ``activity``, ``deal``."""

    class Builders:
        @staticmethod
        def company(organization, *, owner=None, **fields):
            fields.setdefault("name", f"Company {next(_numbers)}")
            with in_tenant(organization):
                return services.company_create(actor=SYSTEM, owner_id=owner.pk if owner else None, **fields)

        @staticmethod
        def contact(organization, *, owner=None, **fields):
            fields.setdefault("last_name", f"Contact {next(_numbers)}")
            with in_tenant(organization):
                return services.contact_create(
                    actor=SYSTEM, owner_id=owner.pk if owner else None, **reference_ids(fields)
                )

        @staticmethod
        def lead(organization, *, owner=None, **fields):
            fields.setdefault("name", f"Lead {next(_numbers)}")
            with in_tenant(organization):
                return services.lead_create(actor=SYSTEM, owner_id=owner.pk if owner else None, **fields)

        @staticmethod
        def activity(organization, *, owner=None, kind="note", **fields):
            fields.setdefault("subject", f"Activity {next(_numbers)}")
            with in_tenant(organization):
                return services.activity_create(
                    actor=SYSTEM, kind=kind, owner_id=owner.pk if owner else None, **reference_ids(fields)
                )

        @staticmethod
        def deal(organization, *, owner=None, **fields):
            from pipelines.services import deal_create

            fields.setdefault("title", f"Deal {next(_numbers)}")
            with in_tenant(organization):
                return deal_create(actor=SYSTEM, owner_id=owner.pk if owner else None, **reference_ids(fields))

    return Builders


@pytest.fixture
def foreign(make, org_a, org_b, in_tenant):
    """``foreign("contact", **fields)``: a record of org B whose id is no record's id in org A (ids are counted
    per schema, so an org B id could otherwise name one of org A's records by coincidence)."""

    def build(kind: str, /, **fields):
        from pipelines.models import Deal

        model = {"contact": Contact, "company": Company, "lead": Lead, "activity": Activity, "deal": Deal}[kind]
        with in_tenant(org_a):
            highest = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        with in_tenant(org_b), connection.cursor() as cursor:
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), %s) + 100000)",
                [highest],
            )
        return getattr(make, kind)(org_b, **fields)

    return build


@pytest.fixture
def events(in_tenant):
    """``events(org, type=None, subject=None)`` → the outbox rows recorded, oldest first."""

    def find(organization, event_type: str | None = None, subject=None) -> list[OutboxEvent]:
        with in_tenant(organization):
            rows = OutboxEvent.objects.order_by("occurred_at")
            if event_type:
                rows = rows.filter(type=event_type)
            if subject is not None:
                rows = rows.filter(subject_type=subject._meta.model_name, subject_id=str(subject.pk))
            return list(rows)

    return find


@pytest.fixture
def rep_a(org_a, member):
    """A Sales Rep of org A (``own`` scope on CRM records): (user, client)."""
    return member(org_a, "sales_rep")
