"""Never a 5xx: what the edge of the API refuses (tests/api/test_fuzz.py looks for more). Each test names the
finding it pins; everything goes through HTTP."""

import json

import pytest
from django.test import Client
from django.test.utils import CaptureQueriesContext

from ..problems import field_error

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


# --- NUL, lone surrogates and invalid UTF-8: refused for every parameter and every JSON string -----------------


@pytest.mark.parametrize(
    "query",
    [
        "search=a%00b",
        "name=%00",
        "cf_anything=%00",
        "ordering=%00",
        "a%00b=1",
        "search=%ED%A0%80",  # a lone surrogate, as UTF-8 would encode it
        "search=%FF",
        "page=%C0%80",
    ],
)
def test_bad_characters_in_a_query_string_are_400(as_owner_a, query):
    for url in ("/api/v1/leads/", "/api/v1/contacts/", "/api/v1/events/", "/api/v1/audit-log/"):
        response = as_owner_a.get(f"{url}?{query}")
        assert response["Content-Type"] == PROBLEM
        assert field_error(response)["code"] == "invalid_characters"


def test_the_refused_parameter_is_named(as_owner_a):
    assert field_error(as_owner_a.get("/api/v1/leads/?status=new&search=x%00"))["field"] == "search"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "a\\u0000b"}', "name"),
        ('{"name": "ok", "custom_fields": {"note": "\\u0000"}}', "custom_fields.note"),
        ('{"name": "ok", "tags": ["fine", "\\ud800"]}', "tags[1]"),
        ('{"name": "\\udfff"}', "name"),
        ('{"name": "ok", "custom_fields": {"\\u0000": 1}}', "custom_fields"),
    ],
)
def test_bad_characters_in_a_json_body_are_400_and_nothing_is_written(as_owner_a, org_a, in_tenant, body, field):
    from crm.models import Lead

    with in_tenant(org_a):
        before = Lead.objects.count()
    response = as_owner_a.post("/api/v1/leads/", data=body, content_type="application/json")
    error = field_error(response)
    assert (error["field"], error["code"]) == (field, "invalid_characters")
    with in_tenant(org_a):
        assert Lead.objects.count() == before


def test_bad_characters_in_a_stored_json_value_never_reach_postgresql(as_owner_a):
    """jsonb refuses \\u0000: a key-value field (API key scopes, custom fields) is refused at the edge."""
    body = '{"name": "k", "scopes": {"crm.lead.view\\u0000": "all"}}'
    response = as_owner_a.post("/api/v1/api-keys/", data=body, content_type="application/json")
    assert field_error(response)["code"] == "invalid_characters"


def test_bad_characters_in_a_form_field_are_400(as_owner_a):
    response = as_owner_a.post("/api/v1/imports/", {"record_type": "contact\x00", "mapping": "{}"}, format="multipart")
    assert field_error(response)["code"] == "invalid_characters"


# --- bodies: nesting and size bounded, public endpoints included ----------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/leads/", "/api/v1/auth/token/", "/api/v1/invitations/accept/"])
def test_a_deeply_nested_body_is_400(as_owner_a, url):
    response = as_owner_a.post(url, data="[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] in ("nesting_too_deep", "parse_error")
    nested = '{"name": "x", "custom_fields": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}"
    response = as_owner_a.post(url, data=nested, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "nesting_too_deep")


@pytest.mark.parametrize("url", ["/api/v1/leads/", "/api/v1/auth/token/"])
def test_a_body_over_the_limit_is_413_before_it_is_read(as_owner_a, settings, url):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "x" * 2000})
    with CaptureQueriesContext(__import__("django.db").db.connection) as queries:
        response = as_owner_a.post(url, data=body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["max_bytes"] == 1000
    assert len(queries) == 0  # refused before tenant, authentication or parsing
    small = as_owner_a.post("/api/v1/leads/", {"name": "fits"}, format="json")
    assert small.status_code == 201


def test_the_json_parser_reads_no_more_than_the_limit(settings):
    import io

    from config.api.errors import PayloadTooLarge
    from config.api.parsers import JSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    with pytest.raises(PayloadTooLarge):
        JSONParser().parse(io.BytesIO(b'{"name": "far too long"}'))
    assert JSONParser().parse(io.BytesIO(b'{"a": 1}')) == {"a": 1}


# --- anonymous callers meet the same edge ------------------------------------------------------------------------


def test_anonymous_bad_input_is_a_problem_too():
    client = Client()
    assert client.get("/api/v1/plans/?x=%00")["Content-Type"] == PROBLEM
    response = client.post("/api/v1/auth/token/", data='{"email": "\\u0000"}', content_type="application/json")
    assert field_error(response)["code"] == "invalid_characters"
