"""One error shape for every error, with a stable code; validation errors name the field."""

from unittest.mock import ANY

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


def test_options_answers_the_allowed_methods_to_any_member(org_a, member):
    """OPTIONS on an organization's endpoint was 403 ``permission_denied`` (its action was not declared)."""
    _, viewer = member(org_a, "viewer")
    response = viewer.options("/api/v1/leads/")
    assert response.status_code == 200, response.content
    assert {"GET", "POST"} <= set(response["Allow"].replace(" ", "").split(","))
    assert response.json() == {"name": ANY, "methods": ANY}
    assert "actions" not in response.json()  # no field metadata: the OpenAPI document has it
    assert client_for(None, org_a).options("/api/v1/leads/").status_code == 401


def test_cache_keys_are_tenant_aware(org_a, org_b, in_tenant):
    with in_tenant(org_a):
        cache.set("dashboard", "A's numbers")
        assert cache.get("dashboard") == "A's numbers"
    with in_tenant(org_b):
        assert cache.get("dashboard") is None


# --- every error under /api/ is a problem document, whatever the URL, the method or DEBUG ----------------------


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize(
    "url", ["/api/v1/leads/abc/", "/api/v1/exports/opportunities/", "/api/v1/nothing/", "/api/v2/leads/", "/api/"]
)
def test_unknown_urls_are_problems_in_production_and_in_debug(as_owner_a, debug, url):
    response = as_owner_a.get(url)
    _assert_problem(response, 404, "not_found")
    assert len(response.content) < 500  # no debug page


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_a_missing_trailing_slash_is_a_404_naming_the_url(as_owner_a, debug, method):
    response = getattr(as_owner_a, method)("/api/v1/leads", {"name": "x"}, format="json")
    body = _assert_problem(response, 404, "not_found")
    assert body["detail"] == "API URLs end with a slash: /api/v1/leads/"
    assert "Location" not in response


def test_methods_media_types_and_acceptance_are_problems(as_owner_a, debug):
    response = as_owner_a.put("/api/v1/leads/", {}, format="json")
    _assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]
    _assert_problem(as_owner_a.get("/api/v1/leads/", HTTP_ACCEPT="application/xml"), 406, "not_acceptable")
    response = as_owner_a.post("/api/v1/leads/", data="name=x", content_type="text/plain")
    _assert_problem(response, 415, "unsupported_media_type")
    response = as_owner_a.post("/api/v1/leads/", data="{", content_type="application/json")
    _assert_problem(response, 400, "parse_error")


def test_an_error_is_json_even_for_a_browser(as_owner_a):
    """The browsable API (in development) renders successes as HTML, never an error."""
    response = as_owner_a.get("/api/v1/leads/999999/", HTTP_ACCEPT="text/html")
    _assert_problem(response, 404, "not_found")
    response = as_owner_a.post("/api/v1/leads/", {}, format="json", HTTP_ACCEPT="text/html")
    _assert_problem(response, 400, "validation_error")


def test_an_uncaught_exception_in_debug_is_a_problem_without_traceback(owner_a, org_a, monkeypatch, settings):
    from crm import services

    settings.DEBUG = True

    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "lead_create", explode)
    client = client_for(owner_a, org_a)
    client.raise_request_exception = False
    response = client.post("/api/v1/leads/", {"name": "x"}, format="json")
    _assert_problem(response, 500, "server_error")
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content


def test_pages_outside_the_api_keep_their_own_errors(api):
    assert api.get("/admin/nothing-here").status_code in (301, 302, 404)
    assert api.get("/healthz").status_code == 200


# --- the rule for codes: the class of error at the top, each field's own code in errors[] -----------------------


def test_a_duplicate_contact_email_names_the_field(as_owner_a):
    as_owner_a.post("/api/v1/contacts/", {"email": "one@example.test"}, format="json")
    response = as_owner_a.post("/api/v1/contacts/", {"email": "ONE@example.test"}, format="json")
    body = _assert_problem(response, 409, "duplicate")
    assert body["errors"] == [
        {"field": "email", "code": "duplicate_email", "detail": "Another contact already has this e-mail address."}
    ]


def test_a_reference_that_does_not_exist_is_a_validation_error(as_owner_a):
    response = as_owner_a.post("/api/v1/invitations/", {"email": "new@example.test", "role": 999999}, format="json")
    body = _assert_problem(response, 400, "validation_error")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("role", "does_not_exist")]
    response = as_owner_a.post("/api/v1/members/transfer-ownership/", {"to_member": 999999}, format="json")
    body = _assert_problem(response, 400, "validation_error")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("to_member", "does_not_exist")]


def test_a_state_conflict_about_a_field_names_it(as_owner_a):
    """A converted lead's status: was a 500 (the error could not carry its field)."""
    lead = as_owner_a.post("/api/v1/leads/", {"name": "Won", "email": "won@example.test"}, format="json").json()
    assert as_owner_a.post(f"/api/v1/leads/{lead['id']}/convert/", {}, format="json").status_code == 200
    response = as_owner_a.patch(f"/api/v1/leads/{lead['id']}/", {"status": "new"}, format="json")
    body = _assert_problem(response, 409, "conflict")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("status", "invalid_lead_transition")]


def test_errors_not_about_a_field_keep_their_own_code(as_owner_a):
    lead = as_owner_a.post("/api/v1/leads/", {"name": "Twice", "email": "t@example.test"}, format="json").json()
    as_owner_a.post(f"/api/v1/leads/{lead['id']}/convert/", {}, format="json")
    response = as_owner_a.post(f"/api/v1/leads/{lead['id']}/convert/", {}, format="json")
    body = _assert_problem(response, 409, "lead_already_converted")
    assert "errors" not in body


def test_the_rule_holds_for_every_domain_error_with_a_field():
    from config.api.errors import Conflict, DomainError, Duplicate, NotFound, ValidationFailed

    for error_class, kind in [
        (DomainError, "validation_error"),
        (ValidationFailed, "validation_error"),
        (Conflict, "conflict"),
        (Duplicate, "duplicate"),
    ]:
        body = error_class("Bad.", field="name", code="specific").problem()
        assert body["code"] == kind
        assert body["errors"] == [{"field": "name", "code": "specific", "detail": "Bad."}]
        assert error_class("Bad.", code="specific").problem()["code"] == "specific"
    assert NotFound().problem()["code"] == "not_found"
