import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target))
    schema = json.loads(target.read_text())
    assert "Problem" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    leads = schema["paths"]["/api/v1/leads/"]["get"]
    assert any(p["name"] == "X-Organization" and p["in"] == "header" for p in leads["parameters"])
    problem = leads["responses"]["403"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "/api/v1/auth/token/" in schema["paths"]


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
