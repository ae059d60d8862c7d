"""Organization B's ids through organization A's header: every pipelines endpoint answers 404 (or "does not exist"
for ids in bodies) and nothing changes in B. Detail routes are read from the URL resolver, so a new one is covered
as soon as it is routed."""

import re

import pytest
from django.db import connection

from integrations.models import OutboxEvent
from pipelines import services
from pipelines.api.views import DealViewSet, PipelineViewSet, StageViewSet
from pipelines.models import Deal, Pipeline, Stage, StageChange
from rbac.declarations import routed_actions
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db

RESOURCE = {PipelineViewSet: "pipeline", StageViewSet: "stage", DealViewSet: "deal"}
DETAIL_ROUTES = sorted(
    {(a.route, a.method, a.view) for a in routed_actions() if a.view in RESOURCE and "{pk}" in a.route},
    key=lambda item: (item[0], item[1]),
)


def test_every_detail_route_is_listed():
    actions = {(RESOURCE[view], re.sub(r".*\{pk\}/?", "", route), method) for route, method, view in DETAIL_ROUTES}
    assert ("deal", "move-stage/", "POST") in actions
    assert ("pipeline", "board/", "GET") in actions
    assert ("stage", "deals/", "GET") in actions
    assert len(DETAIL_ROUTES) == 22


def _state(org, in_tenant):
    with in_tenant(org):
        return (
            list(Pipeline.objects.order_by("pk").values()),
            list(Stage.objects.order_by("pk").values()),
            list(Deal.objects.order_by("pk").values()),
            StageChange.objects.count(),
            OutboxEvent.objects.count(),
        )


def _skip_ahead(cursor, table: str) -> None:
    sequence = f"pg_get_serial_sequence('{table}', 'id')"
    cursor.execute(f"SELECT setval({sequence}, 5000000 + nextval({sequence}))")


@pytest.fixture
def org_b_world(org_a, org_b, owner_b, in_tenant, pipeline_a, make_deal):
    """B's pipeline, stages and deal, with ids that do not exist in A (each schema has its own sequences)."""
    with in_tenant(org_b):
        with connection.cursor() as cursor:
            for table in ("pipelines_pipeline", "pipelines_stage", "pipelines_deal"):
                _skip_ahead(cursor, table)
        pipeline = services.pipeline_create(actor=SYSTEM, name="B's own")
        stages = list(Stage.objects.filter(pipeline=pipeline).order_by("position"))
    deal = make_deal(org_b, owner=owner_b, stage=stages[1])
    with in_tenant(org_a):
        assert not Pipeline.objects.filter(pk=pipeline.pk).exists()
        assert not Stage.objects.filter(pk__in=[s.pk for s in stages]).exists()
        assert not Deal.objects.filter(pk=deal.pk).exists()
    return {"pipeline": pipeline, "stage": stages[1], "stages": stages, "deal": deal}


def _body(resource: str, suffix: str, world) -> dict:
    stages = world["stages"]
    return {
        "move-stage/": {"stage": stages[2].pk},
        "mark-lost/": {"reason": "x"},
        "reopen/": {"stage": stages[0].pk},
        "reorder-stages/": {"stages": [s.pk for s in reversed(stages)]},
        "": {"name": "Hijacked", "title": "Hijacked"},
    }.get(suffix, {})


@pytest.mark.parametrize(("route", "method", "view"), DETAIL_ROUTES, ids=[f"{m} {r}" for r, m, _v in DETAIL_ROUTES])
def test_other_tenants_ids_are_not_found(as_owner_a, org_b, in_tenant, org_b_world, route, method, view):
    resource = RESOURCE[view]
    suffix = re.sub(r".*\{pk\}/", "", route)
    url = route.replace("{pk}", str(org_b_world[resource].pk))
    before = _state(org_b, in_tenant)
    response = getattr(as_owner_a, method.lower())(url, _body(resource, suffix, org_b_world), format="json")
    assert response.status_code == 404, (url, response.content)
    assert response.json()["code"] == "not_found"
    assert _state(org_b, in_tenant) == before


def test_other_tenants_ids_in_bodies_do_not_exist(as_owner_a, org_a, org_b, owner_a, in_tenant, org_b_world, make_deal):
    from crm.models import Contact

    with in_tenant(org_b):
        with connection.cursor() as cursor:
            _skip_ahead(cursor, "crm_contact")
        contact_b = Contact.objects.create(first_name="B", last_name="Contact")
    with in_tenant(org_a):
        assert not Contact.objects.filter(pk=contact_b.pk).exists()
    mine = make_deal(org_a, owner=owner_a)
    before = _state(org_b, in_tenant)
    attempts = [
        ("/api/v1/deals/", {"title": "x", "pipeline": org_b_world["pipeline"].pk}, "pipeline"),
        ("/api/v1/deals/", {"title": "x", "stage": org_b_world["stage"].pk}, "stage"),
        ("/api/v1/deals/", {"title": "x", "contact": contact_b.pk}, "contact"),
        (f"/api/v1/deals/{mine.pk}/move-stage/", {"stage": org_b_world["stage"].pk}, "stage"),
        (f"/api/v1/deals/{mine.pk}/reopen/", {"stage": org_b_world["stage"].pk}, "stage"),
        ("/api/v1/stages/", {"pipeline": org_b_world["pipeline"].pk, "name": "x"}, "pipeline"),
    ]
    for url, body, field in attempts:
        response = as_owner_a.post(url, body, format="json")
        assert response.status_code == 400, (url, response.content)
        assert response.json()["errors"][0]["field"] == field
    response = as_owner_a.get(f"/api/v1/deals/?pipeline={org_b_world['pipeline'].pk}")
    assert response.json()["count"] == 0
    assert _state(org_b, in_tenant) == before
