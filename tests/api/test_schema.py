import json
import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

OPERATIONS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    target = tmp_path_factory.mktemp("schema") / "schema.json"
    with django_db_blocker.unblock():
        call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target))
    return json.loads(target.read_text())


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in OPERATIONS:
                yield path, method, operation


def test_schema_validates_without_warnings(schema):
    assert "Problem" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    leads = schema["paths"]["/api/v1/leads/"]["get"]
    problem = leads["responses"]["403"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "/api/v1/auth/token/" in schema["paths"]


def test_the_organization_header_is_one_security_scheme(schema):
    """Swagger's Authorize fills X-Organization once: a scheme paired with the bearer token, never a parameter."""
    assert schema["components"]["securitySchemes"]["organization"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Organization",
        "description": schema["components"]["securitySchemes"]["organization"]["description"],
    }
    for path, method, operation in _operations(schema):
        assert all(p["name"] != "X-Organization" for p in operation.get("parameters", [])), (method, path)
    assert schema["paths"]["/api/v1/leads/"]["get"]["security"] == [
        {"jwtAuth": [], "organization": []},
        {"apiKeyAuth": []},
    ]
    assert schema["paths"]["/api/v1/organizations/"]["get"]["security"] == [{"jwtAuth": []}]  # a person, no key
    assert "security" not in schema["paths"]["/api/v1/plans/"]["get"]  # public


def test_every_collection_is_paginated_the_same_way(schema):
    """One list shape: no GET answers a bare array; every collection is the same page object."""
    page = {"count", "next", "previous", "results"}
    collections = 0
    for path, method, operation in _operations(schema):
        ok = operation["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if method != "get":
            continue
        assert ok.get("type") != "array", path
        name = ok.get("$ref", "").rsplit("/", 1)[-1]
        if name.startswith("Paginated"):
            collections += 1
            assert set(schema["components"]["schemas"][name]["properties"]) == page, path
            assert {p["name"] for p in operation["parameters"]} >= {"page", "page_size"}, path
    assert collections >= 25
    for path in ("/api/v1/deals/{id}/timeline/", "/api/v1/billing/usage/", "/api/v1/webhooks/event-types/"):
        assert schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    stage_deals = schema["paths"]["/api/v1/stages/{id}/deals/"]["get"]["responses"]["200"]
    assert stage_deals["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaginatedDealCardOutputList"
    }


def test_list_filters_are_documented_only_where_applied(schema):
    deal_list = {p["name"] for p in schema["paths"]["/api/v1/deals/"]["get"]["parameters"]}
    assert {"status", "won_after", "search", "ordering"} <= deal_list
    for path in ("/api/v1/deals/{id}/timeline/", "/api/v1/leads/{id}/timeline/", "/api/v1/stages/{id}/deals/"):
        names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert names == {"id", "page", "page_size"}, path
    stats = {p["name"] for p in schema["paths"]["/api/v1/leads/stats/"]["get"]["parameters"]}
    assert {"status", "search"} <= stats  # statistics count the filtered list


def test_descriptions_name_only_components_that_exist(schema):
    components = set(schema["components"]["schemas"])
    for path, method, operation in _operations(schema):
        for name in re.findall(r"`(\w+)` component", operation.get("description", "")):
            assert name in components, (method, path, name)


def test_ordering_is_documented_with_its_fields(schema):
    ordering = next(p for p in schema["paths"]["/api/v1/deals/"]["get"]["parameters"] if p["name"] == "ordering")
    assert "-amount" in ordering["schema"]["items"]["enum"]
    audit = {p["name"] for p in schema["paths"]["/api/v1/audit-log/"]["get"]["parameters"]}
    assert "ordering" not in audit  # a fixed order: nothing to choose


def test_the_error_code_rule_is_documented(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert "class of error" in problem["description"]
    assert "errors[]" in problem["description"]


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_are_served_without_a_cdn(api, url):
    response = api.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn.jsdelivr" not in html
    assert "unpkg.com" not in html
    assert "/static/drf_spectacular_sidecar/" in html


def test_schema_endpoint(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "CRM API"
