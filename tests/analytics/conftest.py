"""Fixtures for analytics: records with a history. They are made by the services (so events and stage history are
what production writes), then their timestamps are moved into the past with plain updates."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from crm import services as crm
from crm.models import Activity, Lead
from pipelines import services as deals
from pipelines.models import Deal, Stage, StageChange
from tests.factories import SYSTEM, reference_ids

_numbers = itertools.count(1)


@pytest.fixture
def pipeline_a(org_a, in_tenant):
    with in_tenant(org_a):
        return deals.pipeline_create_default(actor=SYSTEM)


@pytest.fixture
def stages_a(pipeline_a, org_a, in_tenant) -> dict[str, Stage]:
    """Qualification (10%), Needs analysis (25%), Proposal (50%), Negotiation (75%), Won, Lost."""
    with in_tenant(org_a):
        return {stage.name: stage for stage in Stage.objects.filter(pipeline=pipeline_a)}


class History:
    """Builders of records with a past, in one organization."""

    def __init__(self, organization, in_tenant, stages):
        self.organization = organization
        self.in_tenant = in_tenant
        self.stages = stages

    def deal(
        self,
        *,
        owner=None,
        amount="100.00",
        created: datetime,
        path: list[tuple[str, datetime]] = (),
        won: datetime | None = None,
        lost: datetime | None = None,
        **fields,
    ) -> Deal:
        """A deal created at ``created`` in the first stage, moved along ``path`` (stage name, when), then won or
        lost at the time given."""
        with self.in_tenant(self.organization):
            deal = deals.deal_create(
                actor=SYSTEM,
                title=f"Deal {next(_numbers)}",
                amount=Decimal(str(amount)),
                owner_id=owner.pk if owner else None,
                **reference_ids(fields),
            )
            return self.live(deal, created=created, path=path, won=won, lost=lost)

    def live(self, deal, *, created: datetime, path=(), won=None, lost=None) -> Deal:
        """Move an existing deal (made by any service) along ``path``, close it, and date all of it."""
        with self.in_tenant(self.organization):
            moments = [created]
            for name, when in path:
                deals.deal_move_stage(deal=deal, stage=self.stages[name], actor=SYSTEM)
                moments.append(when)
            if won is not None:
                deals.deal_mark_won(deal=deal, actor=SYSTEM)
                moments.append(won)
            elif lost is not None:
                deals.deal_mark_lost(deal=deal, actor=SYSTEM, reason="Budget")
                moments.append(lost)
            changes = list(StageChange.objects.filter(deal=deal).order_by("pk"))
            for index, (change, moment) in enumerate(zip(changes, moments, strict=True)):
                spent = moment - moments[index - 1] if index else None
                StageChange.objects.filter(pk=change.pk).update(changed_at=moment, time_in_previous_stage=spent)
            Deal.objects.filter(pk=deal.pk).update(
                created_at=created,
                updated_at=moments[-1],
                stage_entered_at=moments[-1],
                won_at=won,
                lost_at=lost if won is None else None,
            )
            return Deal.objects.get(pk=deal.pk)

    def lead(self, *, owner=None, created: datetime, source: str = "website", **fields) -> Lead:
        with self.in_tenant(self.organization):
            lead = crm.lead_create(
                actor=SYSTEM,
                name=f"Lead {next(_numbers)}",
                owner_id=owner.pk if owner else None,
                source=source,
                **fields,
            )
            Lead.objects.filter(pk=lead.pk).update(created_at=created, updated_at=created)
            return Lead.objects.get(pk=lead.pk)

    def contact(self, *, owner=None):
        with self.in_tenant(self.organization):
            return crm.contact_create(
                actor=SYSTEM, last_name=f"Contact {next(_numbers)}", owner_id=owner.pk if owner else None
            )

    def activity(self, *, owner=None, created: datetime, kind: str = "call", **fields) -> Activity:
        with self.in_tenant(self.organization):
            if not {"contact", "company", "lead", "deal"} & set(fields):
                fields["contact"] = self.contact(owner=owner)
            activity = crm.activity_create(
                actor=SYSTEM,
                kind=kind,
                subject=f"Activity {next(_numbers)}",
                owner_id=owner.pk if owner else None,
                **reference_ids(fields),
            )
            Activity.objects.filter(pk=activity.pk).update(created_at=created, updated_at=created)
            return Activity.objects.get(pk=activity.pk)


@pytest.fixture
def history(org_a, in_tenant, stages_a) -> History:
    return History(org_a, in_tenant, stages_a)


def days_ago(days: float, *, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=days)
