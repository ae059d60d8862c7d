"""Never a 5xx: what the edge of the API refuses (tests/api/test_fuzz.py looks for more). Each test names the
finding it pins; everything goes through HTTP."""

import json
import time

import pytest
from django.test import Client
from django.test.utils import CaptureQueriesContext

from config.api import filters as api_filters
from config.api.fields import InstantField
from rbac.declarations import api_views

from ..problems import field_error

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def number_field(as_owner_a):
    body = {"record_type": "lead", "key": "num", "label": "Num", "type": "number"}
    assert as_owner_a.post("/api/v1/custom-fields/", body, format="json").status_code == 201


# --- numeric custom fields: magnitude and precision bounded at the edge -------------------------------------


@pytest.mark.parametrize("raw", ["1e300000", "1e5000", "-1e400", "1" * 5000, "1e-300000", "0.00001", "1e11"])
def test_a_huge_number_in_a_filter_is_400_at_once_even_for_a_viewer(number_field, org_a, member, raw):
    _user, viewer = member(org_a, "viewer")
    started = time.perf_counter()
    response = viewer.get("/api/v1/leads/", {"cf_num": raw})
    assert time.perf_counter() - started < 1.0
    error = field_error(response)
    assert (error["field"], error["code"]) == ("cf_num", "invalid_custom_field")


@pytest.mark.parametrize("raw", ["1e300000", "1e5000", 1e300, "99999999999.99991", "NaN", "Infinity", [1], {}])
def test_a_number_out_of_bounds_is_not_written(number_field, as_owner_a, org_a, in_tenant, raw):
    from crm.models import Lead

    response = as_owner_a.post("/api/v1/leads/", {"name": "Big", "custom_fields": {"num": raw}}, format="json")
    error = field_error(response)
    assert (error["field"], error["code"]) == ("custom_fields.num", "invalid_custom_field")
    with in_tenant(org_a):
        assert not Lead.objects.filter(name="Big").exists()


@pytest.mark.parametrize(("raw", "stored"), [("99999999999.9999", 99999999999.9999), ("-12", -12), (2.5, 2.5)])
def test_numbers_within_bounds_are_stored_and_found(number_field, as_owner_a, raw, stored):
    created = as_owner_a.post("/api/v1/leads/", {"name": "Ok", "custom_fields": {"num": raw}}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["custom_fields"] == {"num": stored}
    found = as_owner_a.get("/api/v1/leads/", {"cf_num": str(raw)}).json()
    assert [lead["id"] for lead in found["results"]] == [created.json()["id"]]


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


# --- dates: every date and date-time filter and parameter is a 400 on bad input -------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "updated_after=0405-01-01T00:00:00-21:09",
        "created_before=0168-02-17T22:00:13-18:24",
        "won_after=2024-01-01T00:00:00%2B16:00",
        "won_before=0001-01-01T00:00:00%2B01:00",  # before year 1 in UTC
        "close_after=2024-13-45",
        "won_after=2024-13-45T00:00:00Z",
    ],
)
def test_bad_date_filters_on_deals_are_400(as_owner_a, query):
    response = as_owner_a.get(f"/api/v1/deals/?{query}")
    assert field_error(response)["field"] == query.split("=")[0]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/events/?occurred_after=0724-04-08T17:55:20-21:09",
        "/api/v1/activities/?due_before=2024-13-45T00:00:00Z",
        "/api/v1/activities/my-tasks/?due_before=2024-13-45T00:00:00Z",
        "/api/v1/activities/my-tasks/?due_before=2024-01-01T00:00:00-19:00",
        "/api/v1/audit-log/?created_after=0405-01-01T00:00:00-21:09",
        "/api/v1/leads/?updated_before=9999-12-31T23:00:00-05:00",  # after year 9999 in UTC
    ],
)
def test_bad_date_parameters_elsewhere_are_400(as_owner_a, url):
    assert field_error(as_owner_a.get(url))["code"] == "invalid"


@pytest.mark.parametrize(
    "query", ["updated_after=0405-01-01T00:00:00Z", "won_after=0405-01-01T00:00:00-12:00", "close_after=0001-01-01"]
)
def test_odd_but_valid_dates_are_answered(as_owner_a, query):
    assert as_owner_a.get(f"/api/v1/deals/?{query}").status_code == 200


@pytest.fixture
def pipeline_id(as_owner_a):
    return as_owner_a.get("/api/v1/pipelines/").json()["results"][0]["id"]


@pytest.mark.parametrize("query", ["start=2024-13", "start=0000-01", "end=2024-00", "start=2024-1", "end=99999-01"])
def test_bad_forecast_months_are_400(as_owner_a, pipeline_id, query):
    response = as_owner_a.get(f"/api/v1/pipelines/{pipeline_id}/forecast/?{query}")
    assert field_error(response)["field"] == query.split("=")[0]


def test_the_widest_forecast_is_answered(as_owner_a, pipeline_id):
    response = as_owner_a.get(f"/api/v1/pipelines/{pipeline_id}/forecast/?start=0001-01&end=9999-12")
    assert response.status_code == 200


def test_every_date_time_filter_is_bounded():
    """A date-time filter added later with django-filter's own class fails here, not in production."""
    checked = 0
    for _route, view, _actions in api_views():
        filterset = getattr(view, "filterset_class", None)
        if filterset is None:
            continue
        assert issubclass(filterset, api_filters.FilterSet), filterset
        for name, filter_ in filterset.base_filters.items():
            field_class = filter_.field_class
            if issubclass(field_class, __import__("django").forms.DateTimeField):
                assert issubclass(field_class, InstantField), f"{filterset.__name__}.{name}"
                checked += 1
    assert checked >= 10


# --- ordering: only the declared fields, else 400 naming them -------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/audit-log/", "/api/v1/invitations/", "/api/v1/api-keys/"])
def test_ordering_a_list_with_a_fixed_order_is_400(as_owner_a, url):
    response = as_owner_a.get(url, {"ordering": "created_at"})
    error = field_error(response)
    assert (error["field"], error["code"]) == ("ordering", "invalid_ordering")
    assert response.json()["allowed"] == []


def test_an_unknown_ordering_is_400_naming_the_allowed_fields(as_owner_a):
    response = as_owner_a.get("/api/v1/leads/", {"ordering": "-score,password"})
    assert field_error(response)["code"] == "invalid_ordering"
    assert "password" in response.json()["detail"]
    assert response.json()["allowed"] == ["created_at", "updated_at", "name", "score", "estimated_value", "status"]


def test_a_declared_ordering_orders(as_owner_a):
    for score, name in [(10, "Low"), (90, "High")]:
        as_owner_a.post("/api/v1/leads/", {"name": name, "score": score}, format="json")
    names = [lead["name"] for lead in as_owner_a.get("/api/v1/leads/?ordering=-score,name").json()["results"]]
    assert names[:2] == ["High", "Low"]
    assert as_owner_a.get("/api/v1/leads/?ordering=").status_code == 200  # empty: the default order


def test_every_list_uses_the_strict_ordering_filter():
    from rest_framework import filters as drf_filters

    for _route, view, _actions in api_views():
        for backend in getattr(view, "filter_backends", []):
            if issubclass(backend, drf_filters.OrderingFilter):
                assert issubclass(backend, api_filters.OrderingFilter), view


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
