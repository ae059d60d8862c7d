"""Pipelines: the default one, CRUD, exactly one default, archiving, and plan gating of multiple pipelines."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.services import subscription_change_plan
from pipelines import services
from pipelines.models import Pipeline, Stage
from tenants.models import Organization
from tests.factories import SYSTEM

from ..problems import field_error

pytestmark = pytest.mark.django_db

WRITES = {"INSERT", "UPDATE", "DELETE"}
CUSTOM_STAGES = [
    {"name": "Discovery", "probability": 20},
    {"name": "Demo", "probability": 60, "rotting_days": 7},
    {"name": "Closed won", "probability": 100, "kind": "won"},
    {"name": "Closed lost", "probability": 0, "kind": "lost"},
]


def _defaults(org, in_tenant) -> list[tuple[str, bool, bool]]:
    with in_tenant(org):
        return list(Pipeline.objects.order_by("pk").values_list("name", "is_default", "is_archived"))


def test_default_pipeline_has_the_standard_stages(org_a, in_tenant):
    with in_tenant(org_a):
        pipeline = services.pipeline_create_default(actor=SYSTEM)
        again = services.pipeline_create_default(actor=SYSTEM)
        stages = list(Stage.objects.filter(pipeline=pipeline).values_list("name", "position", "probability", "kind"))
        assert again.pk == pipeline.pk
        assert Pipeline.objects.count() == 1
    assert pipeline.is_default
    assert stages == [
        ("Qualification", 0, 10, "open"),
        ("Needs analysis", 1, 25, "open"),
        ("Proposal", 2, 50, "open"),
        ("Negotiation", 3, 75, "open"),
        ("Won", 4, 100, "won"),
        ("Lost", 5, 0, "lost"),
    ]


def test_a_new_organization_is_provisioned_with_its_default_pipeline(as_owner_a, org_a):
    body = as_owner_a.get("/api/v1/pipelines/").json()
    assert body["count"] == 1
    assert body["results"][0]["is_default"] is True
    assert [s["name"] for s in body["results"][0]["stages"]][-2:] == ["Won", "Lost"]


def test_signing_up_provisions_the_default_pipeline_in_the_new_schema(api, unique_email, in_tenant):
    response = api.post(
        "/api/v1/auth/register/",
        {
            "email": unique_email("signup"),
            "password": "Correct-Horse-Battery-9",
            "first_name": "Ada",
            "organization_name": "Pipelines Ltd",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    organization = Organization.objects.get(pk=response.json()["organization"]["id"])
    with in_tenant(organization):
        assert list(Pipeline.objects.values_list("is_default", flat=True)) == [True]


def test_listing_pipelines_never_writes(as_owner_a, org_a, in_tenant):
    """An organization without pipelines (provisioned before they were made at provisioning) lists none; the
    one-off ``ensure_default_pipelines`` gives it its default."""
    with in_tenant(org_a):
        Pipeline.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        body = as_owner_a.get("/api/v1/pipelines/").json()
    assert body["count"] == 0
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].split()[0].upper() in WRITES]
    assert writes == []
    with in_tenant(org_a):
        assert not Pipeline.objects.exists()
    call_command("ensure_default_pipelines", stdout=io.StringIO())
    assert as_owner_a.get("/api/v1/pipelines/").json()["results"][0]["is_default"] is True
    output = io.StringIO()
    call_command("ensure_default_pipelines", stdout=output)  # idempotent
    assert output.getvalue() == "default pipelines created: 0\n"


def test_deal_without_pipeline_lands_in_the_default_pipelines_first_stage(as_owner_a, org_a, in_tenant):
    response = as_owner_a.post("/api/v1/deals/", {"title": "First deal"})
    assert response.status_code == 201, response.json()
    with in_tenant(org_a):
        pipeline = Pipeline.objects.get(is_default=True)
        first = Stage.objects.get(pipeline=pipeline, position=0)
    assert (response.json()["pipeline"]["id"], response.json()["stage"]["id"]) == (pipeline.pk, first.pk)


def test_create_with_custom_stages_and_retrieve(as_owner_a, pipeline_a):
    response = as_owner_a.post("/api/v1/pipelines/", {"name": "Renewals", "currency": "eur", "stages": CUSTOM_STAGES})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["currency"], body["is_default"]) == ("Renewals", "EUR", False)
    assert [(s["name"], s["position"], s["kind"]) for s in body["stages"]] == [
        ("Discovery", 0, "open"),
        ("Demo", 1, "open"),
        ("Closed won", 2, "won"),
        ("Closed lost", 3, "lost"),
    ]
    assert as_owner_a.get(f"/api/v1/pipelines/{body['id']}/").json() == body


@pytest.mark.parametrize(
    ("stages", "code"),
    [
        ([{"name": "Won", "probability": 100, "kind": "won"}, {"name": "Lost", "kind": "lost"}], "last_open_stage"),
        ([{"name": "Open"}, {"name": "Lost", "kind": "lost"}], "closing_stage_required"),
        (
            [
                {"name": "Open"},
                {"name": "W1", "probability": 100, "kind": "won"},
                {"name": "W2", "probability": 100, "kind": "won"},
                {"name": "L", "kind": "lost"},
            ],
            "closing_stage_required",
        ),
        ([{"name": "Open"}, {"name": "Won", "probability": 90, "kind": "won"}, {"name": "L", "kind": "lost"}], None),
        ([{"name": "Open", "probability": 101}, {"name": "W", "kind": "won"}, {"name": "L", "kind": "lost"}], None),
    ],
)
def test_invalid_stage_sets_are_refused(as_owner_a, pipeline_a, org_a, in_tenant, stages, code):
    response = as_owner_a.post("/api/v1/pipelines/", {"name": "Bad", "stages": stages})
    assert response.status_code == 400
    assert field_error(response)["code"] in ((code,) if code else ("invalid_probability", "max_value"))
    with in_tenant(org_a):
        assert Pipeline.objects.count() == 1


def test_exactly_one_default_and_set_default(as_owner_a, pipeline_a, org_a, in_tenant):
    second = as_owner_a.post("/api/v1/pipelines/", {"name": "Partners"}).json()
    third = as_owner_a.post("/api/v1/pipelines/", {"name": "Enterprise", "is_default": True}).json()
    assert third["is_default"] is True
    assert [d for _n, d, _a in _defaults(org_a, in_tenant)] == [False, False, True]

    response = as_owner_a.post(f"/api/v1/pipelines/{second['id']}/set-default/")
    assert response.status_code == 200
    assert response.json()["is_default"] is True
    assert _defaults(org_a, in_tenant) == [
        ("Sales pipeline", False, False),
        ("Partners", True, False),
        ("Enterprise", False, False),
    ]
    # Setting the default again changes nothing.
    assert as_owner_a.post(f"/api/v1/pipelines/{second['id']}/set-default/").status_code == 200
    assert [d for _n, d, _a in _defaults(org_a, in_tenant)] == [False, True, False]


def test_archiving_rules(as_owner_a, pipeline_a, org_a, in_tenant):
    other = as_owner_a.post("/api/v1/pipelines/", {"name": "Partners"}).json()
    response = as_owner_a.post(f"/api/v1/pipelines/{pipeline_a.pk}/archive/")
    assert (response.status_code, response.json()["code"]) == (409, "default_pipeline_protected")

    assert as_owner_a.post(f"/api/v1/pipelines/{other['id']}/archive/").json()["is_archived"] is True
    archived = as_owner_a.get("/api/v1/pipelines/?is_archived=true").json()["results"]
    assert [p["id"] for p in archived] == [other["id"]]
    # No new deals in an archived pipeline, and it cannot become the default.
    response = as_owner_a.post("/api/v1/deals/", {"title": "X", "pipeline": other["id"]})
    assert (response.status_code, response.json()["code"]) == (409, "pipeline_archived")
    response = as_owner_a.post(f"/api/v1/pipelines/{other['id']}/set-default/")
    assert (response.status_code, response.json()["code"]) == (409, "pipeline_archived")

    assert as_owner_a.post(f"/api/v1/pipelines/{other['id']}/unarchive/").json()["is_archived"] is False
    assert as_owner_a.post("/api/v1/deals/", {"title": "X", "pipeline": other["id"]}).status_code == 201


def test_update_and_delete(as_owner_a, pipeline_a, org_a, in_tenant, make_deal):
    other = as_owner_a.post("/api/v1/pipelines/", {"name": "Partners"}).json()
    response = as_owner_a.patch(f"/api/v1/pipelines/{other['id']}/", {"name": " Channel ", "currency": "gbp"})
    assert (response.json()["name"], response.json()["currency"]) == ("Channel", "GBP")

    response = as_owner_a.delete(f"/api/v1/pipelines/{pipeline_a.pk}/")
    assert (response.status_code, response.json()["code"]) == (409, "default_pipeline_protected")

    with in_tenant(org_a):
        deal = make_deal(org_a, pipeline=Pipeline.objects.get(pk=other["id"]))
    response = as_owner_a.delete(f"/api/v1/pipelines/{other['id']}/")
    assert (response.status_code, response.json()["code"]) == (409, "pipeline_has_deals")
    assert as_owner_a.delete(f"/api/v1/deals/{deal.pk}/").status_code == 204
    assert as_owner_a.delete(f"/api/v1/pipelines/{other['id']}/").status_code == 204
    with in_tenant(org_a):
        assert not Pipeline.objects.filter(pk=other["id"]).exists()
        assert not Stage.objects.filter(pipeline_id=other["id"]).exists()


def test_free_plan_has_one_pipeline(as_owner_a, pipeline_a, org_a, in_tenant):
    other = as_owner_a.post("/api/v1/pipelines/", {"name": "Partners"}).json()
    as_owner_a.post(f"/api/v1/pipelines/{other['id']}/archive/")
    subscription_change_plan(organization=org_a, plan_code="free", actor=None)

    response = as_owner_a.post("/api/v1/pipelines/", {"name": "Second"})
    assert response.status_code == 403
    body = response.json()
    assert (body["code"], body["feature"], body["plan"]["code"]) == ("feature_not_in_plan", "pipelines.multiple", "pro")
    # Unarchiving would make a second active pipeline: same gate.
    response = as_owner_a.post(f"/api/v1/pipelines/{other['id']}/unarchive/")
    assert response.json()["code"] == "feature_not_in_plan"
    with in_tenant(org_a):
        assert Pipeline.objects.count() == 2
        assert Pipeline.objects.get(pk=other["id"]).is_archived
    # The one pipeline keeps working on Free.
    assert as_owner_a.get(f"/api/v1/pipelines/{pipeline_a.pk}/board/").status_code == 200
    assert as_owner_a.patch(f"/api/v1/pipelines/{pipeline_a.pk}/", {"name": "Main"}).status_code == 200

    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    assert as_owner_a.post("/api/v1/pipelines/", {"name": "Second"}).status_code == 201


@pytest.mark.parametrize("role", ["sales_rep", "support", "viewer"])
def test_only_managers_shape_pipelines(org_a, pipeline_a, member, role):
    _user, client = member(org_a, role)
    assert client.get("/api/v1/pipelines/").status_code == 200
    for method, url, data in [
        ("post", "/api/v1/pipelines/", {"name": "Mine"}),
        ("patch", f"/api/v1/pipelines/{pipeline_a.pk}/", {"name": "Renamed"}),
        ("post", f"/api/v1/pipelines/{pipeline_a.pk}/set-default/", {}),
        ("post", "/api/v1/stages/", {"pipeline": pipeline_a.pk, "name": "New"}),
    ]:
        response = getattr(client, method)(url, data)
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied"), url
