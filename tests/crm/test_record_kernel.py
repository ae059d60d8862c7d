"""The record kernel (crm/records.py) that crm's and pipelines' services share: one scope rule for leads and deals,
one update helper with the catalogue's tags shape, "not given" apart from None."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from crm import records
from crm import services as crm_services
from crm.errors import OutOfReach
from crm.models import Lead
from crm.permissions import LEAD_VIEW
from integrations.models import OutboxEvent
from pipelines import services as pipeline_services
from pipelines.models import Deal
from pipelines.permissions import DEAL_VIEW
from rbac.access import access_for
from tests.factories import SYSTEM


def _access(user, organization, grants: dict[str, str]):
    """The member's access with exactly these grants (as a custom role or an API key's scopes would give)."""
    return dataclasses.replace(access_for(user=user, organization=organization), grants=grants)


CREATE = [
    pytest.param(
        "crm.lead.create", "crm.lead.update", lambda actor, **kw: crm_services.lead_create(actor=actor, name="L", **kw)
    ),
    pytest.param(
        "pipelines.deal.create",
        "pipelines.deal.update",
        lambda actor, **kw: pipeline_services.deal_create(actor=actor, title="D", **kw),
    ),
]


@pytest.mark.parametrize(("create", "update", "make"), CREATE)
def test_whoever_may_create_a_record_may_own_it(create, update, make, org_a, owner_a, member, in_tenant):
    """The one scope rule, alike for leads and deals: taking a record for oneself is always in reach, even for a
    role that creates records without editing any (pipelines used to refuse the deal: 400 out_of_scope)."""
    rep, _client = member(org_a, "sales_rep")
    actor = _access(rep, org_a, {create: "all"})
    with in_tenant(org_a):
        assert make(actor).owner_id == rep.pk
        assert make(actor, owner_id=rep.pk).owner_id == rep.pk
        with pytest.raises(OutOfReach):
            make(actor, owner_id=owner_a.pk)
        with pytest.raises(OutOfReach):
            make(actor, owner_id=None)  # nobody's: only an `all` grant reaches it


@pytest.mark.parametrize(("create", "update", "make"), CREATE)
def test_an_own_scope_keeps_records_its_own(create, update, make, org_a, owner_a, member, in_tenant):
    rep, _client = member(org_a, "sales_rep")
    own = _access(rep, org_a, {create: "all", update: "own"})
    everyone = _access(rep, org_a, {create: "all", update: "all"})
    with in_tenant(org_a):
        with pytest.raises(OutOfReach):
            make(own, owner_id=owner_a.pk)
        assert make(everyone, owner_id=owner_a.pk).owner_id == owner_a.pk
        assert make(SYSTEM, owner_id=owner_a.pk).owner_id == owner_a.pk


@pytest.mark.parametrize("kind", ["lead", "deal"])
def test_handing_a_record_away_needs_the_scope(kind, org_a, owner_a, member, in_tenant, make):
    rep, _client = member(org_a, "sales_rep")
    update = {"lead": crm_services.lead_update, "deal": pipeline_services.deal_update}[kind]
    permission = {"lead": "crm.lead.update", "deal": "pipelines.deal.update"}[kind]
    record = getattr(make, kind)(org_a, owner=rep)
    with in_tenant(org_a), pytest.raises(OutOfReach):
        update(**{kind: record}, actor=_access(rep, org_a, {permission: "own"}), owner_id=owner_a.pk)


def _updates(organization, in_tenant, kind: str, pk: int) -> list[dict]:
    with in_tenant(organization):
        return [
            event.payload["changes"]
            for event in OutboxEvent.objects.filter(type=f"{kind}.updated", subject_id=str(pk)).order_by("occurred_at")
        ]


@pytest.mark.parametrize("kind", ["lead", "contact", "company", "deal"])
def test_updated_events_carry_tags_as_the_catalogue_says(kind, org_a, in_tenant, make):
    """``changes.tags`` is the new list of names, present only when the tags changed (deal.updated sent
    ``[before, after]``; lead.updated sent tags that had not changed)."""
    record = getattr(make, kind)(org_a, tags=["b", "a"])
    update = getattr(crm_services, f"{kind}_update", None) or pipeline_services.deal_update
    with in_tenant(org_a):
        update(**{kind: record}, actor=SYSTEM, tags=["a", "b"])  # the same tags: no change, no event
        update(**{kind: record}, actor=SYSTEM, tags=["c", "a"])
        update(**{kind: record}, actor=SYSTEM, tags=["a", "c"], custom_fields_values={})  # nothing changes
    assert _updates(org_a, in_tenant, kind, record.pk) == [{"tags": ["a", "c"]}]


def test_not_given_leaves_a_field_and_none_clears_it(org_a, owner_a, in_tenant, make):
    deal = make.deal(org_a, owner=owner_a, expected_close_date=datetime.date(2030, 1, 31))
    with in_tenant(org_a):
        pipeline_services.deal_update(deal=deal, actor=SYSTEM, title="Renamed")
        kept = Deal.objects.get(pk=deal.pk)
        pipeline_services.deal_update(deal=deal, actor=SYSTEM, expected_close_date=None, owner_id=None)
        cleared = Deal.objects.get(pk=deal.pk)
    assert (kept.title, kept.expected_close_date, kept.owner_id) == ("Renamed", datetime.date(2030, 1, 31), owner_a.pk)
    assert (cleared.expected_close_date, cleared.owner_id) == (None, None)
    assert _updates(org_a, in_tenant, "deal", deal.pk)[-1] == {
        "expected_close_date": ["2030-01-31", None],
        "owner_id": [owner_a.pk, None],
    }


def test_services_name_what_they_accept(org_a, in_tenant):
    with in_tenant(org_a), pytest.raises(TypeError):
        crm_services.lead_create(actor=SYSTEM, name="L", disqualified_reason="sneaked in")  # type: ignore[call-arg]
    assert repr(records.UNSET) == "UNSET"
    assert records.given(a=1, b=records.UNSET, c=None) == {"a": 1, "c": None}


def test_crm_reaches_deals_through_its_registries(org_a, owner_a, in_tenant, make):
    """crm never imports pipelines (import-linter): pipelines fills crm.records at start-up."""
    assert records.record_model("deal") is Deal
    assert records.record_model("lead") is Lead
    assert [
        (ref.model, ref.field, ref.name) for ref in records.references_to(Deal._meta.get_field("contact").related_model)
    ] == [(Deal, "contact", "deals")]
    contact = make.contact(org_a, owner=owner_a)
    duplicate = make.contact(org_a, owner=owner_a)
    deal = make.deal(org_a, owner=owner_a, contact=duplicate)
    with in_tenant(org_a):
        crm_services.contact_merge(survivor=contact, duplicate=duplicate, actor=SYSTEM)
        assert Deal.objects.get(pk=deal.pk).contact_id == contact.pk


def test_an_activity_names_a_deal_within_reach_through_the_registry(org_a, owner_a, member, make):
    """The activity input names deals lazily (crm.records), with the deal view permission's record scope: a Sales
    Rep may log on their own deal; another member's deal is "does not exist", as a foreign one."""
    assert records.record_view_permission("deal") == DEAL_VIEW
    assert records.record_view_permission("lead") == LEAD_VIEW
    rep, client = member(org_a, "sales_rep")
    mine = make.deal(org_a, owner=rep)
    theirs = make.deal(org_a, owner=owner_a)

    logged = client.post("/api/v1/activities/", {"kind": "note", "subject": "Called", "deal": mine.pk}, format="json")
    assert logged.status_code == 201, logged.content
    assert logged.json()["deal"]["id"] == mine.pk

    refused = client.post(
        "/api/v1/activities/", {"kind": "note", "subject": "Called", "deal": theirs.pk}, format="json"
    )
    assert refused.status_code == 400
    assert [(error["field"], error["code"]) for error in refused.json()["errors"]] == [("deal", "does_not_exist")]
