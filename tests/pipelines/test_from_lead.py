"""The deal a lead conversion creates: ``deal_create_from_lead`` inside the conversion's transaction."""

from decimal import Decimal

import pytest
from django.db import transaction

from billing.errors import PlanLimitReached
from billing.models import Override
from config.decision_cache import invalidate_decisions
from crm.models import Company, Contact, Lead
from crm.tagging import tags_named
from integrations.models import OutboxEvent
from pipelines.models import Pipeline, StageChange
from pipelines.services import deal_create_from_lead
from rbac.access import access_for
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db


def _converted_lead(owner, *, company=True) -> Lead:
    contact = Contact.objects.create(first_name="Grace", last_name="Hopper", owner=owner)
    firm = Company.objects.create(name="Navy Labs", owner=owner) if company else None
    lead = Lead.objects.create(
        name="Grace Hopper",
        company_name="Navy Labs (typed)",
        estimated_value=Decimal("4200.00"),
        owner=owner,
        converted_contact=contact,
        converted_company=firm,
    )
    lead.tags.set(tags_named(["conference"], actor=SYSTEM))
    return lead


def test_deal_from_a_converted_lead(org_a, owner_a, member, in_tenant):
    rep, _client = member(org_a, "sales_rep")
    manager, _ = member(org_a, "manager")
    actor = access_for(user=manager, organization=org_a)
    with in_tenant(org_a), transaction.atomic():
        lead = _converted_lead(rep)
        deal = deal_create_from_lead(lead=lead, actor=actor)
        default = Pipeline.objects.get(is_default=True)  # provisioned on the way if missing
        event = OutboxEvent.objects.get(type="deal.created", subject_id=str(deal.pk))
        change = StageChange.objects.get(deal=deal)
        tags = sorted(deal.tags.values_list("name", flat=True))
    assert deal.title == "Navy Labs: Grace Hopper"
    assert (deal.amount, deal.pipeline_id, deal.stage.name, deal.status) == (
        Decimal("4200.00"),
        default.pk,
        "Qualification",
        "open",
    )
    assert (deal.owner_id, deal.contact_id, deal.company_id) == (
        rep.pk,
        lead.converted_contact_id,
        lead.converted_company_id,
    )
    assert tags == ["conference"]
    assert (event.actor_id, event.payload["source"]) == (manager.pk, {"lead": lead.pk})
    assert (change.from_stage_id, change.to_stage_name, change.changed_by_id) == (None, "Qualification", manager.pk)


def test_title_without_company_and_amount_without_estimate(org_a, owner_a, in_tenant):
    with in_tenant(org_a), transaction.atomic():
        lead = _converted_lead(owner_a, company=False)
        lead.company_name, lead.estimated_value = "", None
        deal = deal_create_from_lead(lead=lead, actor=SYSTEM)
    assert (deal.title, deal.amount) == ("Grace Hopper", Decimal("0"))


def test_conversion_counts_against_the_deal_limit(org_a, owner_a, in_tenant):
    Override.objects.create(organization=org_a, limit="deals", limit_value=0)
    invalidate_decisions(organization_id=org_a.pk)
    with in_tenant(org_a):
        lead = _converted_lead(owner_a)
        with pytest.raises(PlanLimitReached):
            deal_create_from_lead(lead=lead, actor=SYSTEM)
