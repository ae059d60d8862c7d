"""One error shape for every error, with a stable code; validation errors name the field."""

import pytest
from django.core.cache import cache
from django.test import Client

from ..conftest import client_for

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _assert_problem(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    return body


def test_unknown_url_is_a_problem(api):
    _assert_problem(api.get("/api/v1/nothing-here/"), 404, "not_found")


def test_malformed_json_is_400(as_owner_a):
    response = as_owner_a.post("/api/v1/leads/", data="{not json", content_type="application/json")
    _assert_problem(response, 400, "parse_error")


def test_method_not_allowed(as_owner_a):
    _assert_problem(as_owner_a.put("/api/v1/leads/", {}, format="json"), 405, "method_not_allowed")


def test_validation_errors_name_each_field(as_owner_a):
    response = as_owner_a.post("/api/v1/leads/", {"score": 500, "email": "nope"}, format="json")
    body = _assert_problem(response, 400, "validation_error")
    fields = {error["field"]: error["code"] for error in body["errors"]}
    assert fields == {"name": "required", "score": "max_value", "email": "invalid"}


def test_bad_token_is_401_with_a_challenge(org_a):
    client = Client(HTTP_AUTHORIZATION="Bearer not-a-token", HTTP_X_ORGANIZATION=org_a.slug)
    response = client.get("/api/v1/organizations/current/")
    _assert_problem(response, 401, "token_not_valid")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_server_error_is_a_problem_and_writes_nothing(owner_a, org_a, monkeypatch, in_tenant):
    from crm import services
    from crm.models import Lead

    def explode(**kwargs):
        Lead.objects.create(name="half-written")
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "lead_create", explode)
    client = client_for(owner_a, org_a)
    client.raise_request_exception = False
    response = client.post("/api/v1/leads/", {"name": "x"}, format="json")
    _assert_problem(response, 500, "server_error")
    assert "boom" not in response.content.decode()


def test_cors_allow_list(api):
    allowed = api.options(
        "/api/v1/auth/token/",
        HTTP_ORIGIN="http://localhost:3000",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,x-organization,idempotency-key",
    )
    assert allowed["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "x-organization" in allowed["Access-Control-Allow-Headers"]
    denied = api.options(
        "/api/v1/auth/token/", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in denied


def test_cache_keys_are_tenant_aware(org_a, org_b, in_tenant):
    with in_tenant(org_a):
        cache.set("dashboard", "A's numbers")
        assert cache.get("dashboard") == "A's numbers"
    with in_tenant(org_b):
        assert cache.get("dashboard") is None
