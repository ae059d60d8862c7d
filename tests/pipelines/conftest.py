"""Fixtures for pipelines and deals: org A's default pipeline and a deal builder that goes through the services."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from pipelines import services
from pipelines.models import Deal, Pipeline, Stage
from tests.factories import SYSTEM, reference_ids

_titles = itertools.count(1)


@pytest.fixture
def pipeline_a(org_a, in_tenant) -> Pipeline:
    with in_tenant(org_a):
        return services.pipeline_create_default(actor=SYSTEM)


@pytest.fixture
def stages_a(pipeline_a, org_a, in_tenant) -> dict[str, Stage]:
    """The default stages by name: Qualification, Needs analysis, Proposal, Negotiation, Won, Lost."""
    with in_tenant(org_a):
        return {stage.name: stage for stage in Stage.objects.filter(pipeline=pipeline_a)}


@pytest.fixture
def make_deal(in_tenant):
    """``make_deal(org, owner=user, stage=..., amount=...)``: a deal created by the service, as the system."""

    def make(organization, *, owner=None, amount="100.00", title=None, **fields) -> Deal:
        with in_tenant(organization):
            return services.deal_create(
                actor=SYSTEM,
                title=title or f"Deal {next(_titles)}",
                amount=Decimal(str(amount)),
                owner_id=owner.pk if owner is not None else None,
                **reference_ids(fields),
            )

    return make


def positions(org, pipeline, in_tenant) -> list[int]:
    with in_tenant(org):
        return list(Stage.objects.filter(pipeline=pipeline).order_by("position").values_list("position", flat=True))
