"""The typed actor (rbac/actor.py): data-plane services act for an Access or a SystemActor, and refuse anything
else loudly, before reading or writing anything."""

from __future__ import annotations

import inspect

import pytest

from crm import services as crm_services
from crm.campaigns import services as campaign_services
from integrations import outbox
from pipelines import services as pipeline_services
from rbac.access import access_for
from rbac.actor import SystemActor, actor_identity, holds, require_actor

from ..factories import SYSTEM


def _acting_services():
    """Every public function of the data-plane service modules that takes an ``actor``."""
    for module in (crm_services, pipeline_services, campaign_services):
        for name in sorted(getattr(module, "__all__", None) or dir(module)):
            function = getattr(module, name)
            if name.startswith("_") or not inspect.isfunction(function):
                continue
            if not function.__module__.startswith(module.__name__):
                continue  # imported from elsewhere (rbac.actor's helpers, crm.tagging)
            if "actor" in inspect.signature(function).parameters:
                yield pytest.param(function, id=f"{module.__name__}.{name}")


ACTING = list(_acting_services())


def test_the_services_are_found():
    names = {param.id.rsplit(".", 1)[1] for param in ACTING}
    assert {"lead_create", "lead_convert", "bulk_update", "deal_create", "deal_move_stage", "campaign_schedule"} <= (
        names
    )


def _arguments(function, actor) -> dict:
    """Every required argument, as a placeholder nothing may touch: the actor is checked first."""
    placeholder = object()
    arguments = {
        name: placeholder
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is inspect.Parameter.empty and parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    arguments["actor"] = actor
    return arguments


@pytest.mark.parametrize("function", ACTING)
@pytest.mark.parametrize("bad", ["none", "user"])
def test_a_bare_user_or_none_is_refused(function, bad, owner_a, org_a, in_tenant):
    actor = None if bad == "none" else owner_a
    with in_tenant(org_a), pytest.raises(TypeError, match=r"rbac\.actor\.SystemActor"):
        function(**_arguments(function, actor))


def test_require_actor_accepts_an_access_or_the_system(owner_a, org_a):
    access = access_for(user=owner_a, organization=org_a)
    assert require_actor(access) is access
    assert require_actor(SYSTEM) is SYSTEM
    for wrong in (None, owner_a, "system", 0):
        with pytest.raises(TypeError):
            require_actor(wrong)


def test_the_system_names_why_it_acts():
    with pytest.raises(ValueError, match="names why"):
        SystemActor("")
    assert SystemActor("campaign sending") == SystemActor("campaign sending")


def test_identity_of_each_actor(owner_a, org_a):
    access = access_for(user=owner_a, organization=org_a)
    assert actor_identity(access) == (owner_a.pk, owner_a.email)
    assert actor_identity(SYSTEM) == (None, "")  # webhooks and the timeline show the system as no one (actor: null)


def test_holds_reads_the_grants_and_the_system_holds_everything(owner_a, org_a, member):
    viewer, _client = member(org_a, "viewer")
    access = access_for(user=viewer, organization=org_a)
    assert holds(access, "crm.lead.view")
    assert not holds(access, "crm.tag.manage")
    assert holds(SYSTEM, "crm.tag.manage")
    with pytest.raises(TypeError):
        holds(None, "crm.tag.manage")  # type: ignore[arg-type]


def test_an_event_needs_an_actor(org_a, in_tenant):
    from django.db import transaction

    with in_tenant(org_a):
        lead = crm_services.lead_create(actor=SYSTEM, name="Ada")
    with in_tenant(org_a), transaction.atomic(), pytest.raises(TypeError):
        outbox.record("lead.updated", subject=lead, payload={"id": lead.pk, "changes": {}}, actor=None)  # type: ignore[arg-type]
