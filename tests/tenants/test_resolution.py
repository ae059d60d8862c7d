import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tenants.services import organization_delete, organization_suspend

from ..conftest import client_for

pytestmark = pytest.mark.django_db


def test_header_resolves_member_organization(as_owner_a, org_a):
    response = as_owner_a.get("/api/v1/organizations/current/")
    assert response.status_code == 200
    assert response.json()["slug"] == org_a.slug
    assert response.json()["role"] == "owner"


def test_host_resolves_organization(owner_a, org_a):
    client = client_for(owner_a)
    response = client.get("/api/v1/organizations/current/", HTTP_HOST=f"{org_a.slug}.localhost")
    assert response.status_code == 200
    assert response.json()["slug"] == org_a.slug


@pytest.mark.parametrize("slug", ["no-such-org", "ORG_WITH_UNDERSCORE", "x" * 80])
def test_unknown_slug_is_404(owner_a, slug):
    response = client_for(owner_a).get("/api/v1/organizations/current/", HTTP_X_ORGANIZATION=slug)
    assert response.status_code == 404
    assert response.json()["code"] == "organization_not_found"
    assert response["Content-Type"] == "application/problem+json"


def test_non_member_gets_the_same_404_as_unknown(owner_a, org_b):
    as_a_in_b = client_for(owner_a, org_b)
    member_of_other = as_a_in_b.get("/api/v1/organizations/current/")
    unknown = client_for(owner_a).get("/api/v1/organizations/current/", HTTP_X_ORGANIZATION="nope")
    assert member_of_other.status_code == unknown.status_code == 404
    assert member_of_other.json() == unknown.json()


def test_suspended_organization_is_404_then_back(owner_a, org_a):
    client = client_for(owner_a, org_a)
    assert client.get("/api/v1/organizations/current/").status_code == 200
    organization_suspend(organization=org_a)
    response = client.get("/api/v1/organizations/current/")
    assert response.status_code == 404
    assert response.json()["code"] == "organization_not_found"


def test_deleted_organization_is_404(owner_a, org_a):
    organization_delete(organization=org_a)
    assert client_for(owner_a, org_a).get("/api/v1/organizations/current/").status_code == 404


def test_tenant_endpoint_without_organization_is_400(owner_a):
    response = client_for(owner_a).get("/api/v1/organizations/current/")
    assert response.status_code == 400
    assert response.json()["code"] == "organization_required"


def test_anonymous_is_401(org_a, api):
    response = api.get("/api/v1/organizations/current/", HTTP_X_ORGANIZATION=org_a.slug)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_resolution_and_membership_cost_no_query_when_warm(as_owner_a):
    as_owner_a.get("/api/v1/organizations/current/")  # warm the caches
    with CaptureQueriesContext(connection) as queries:
        response = as_owner_a.get("/api/v1/organizations/current/")
    assert response.status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    # Only the JWT user lookup and the serializer's domain list may touch the database.
    assert not any("tenants_organization" in s or "rbac_membership" in s or "search_path" in s for s in sql), sql


UNREACHABLE_URLS = ["/api/v1/organizations/current/", "/api/v1/leads/", "/api/v1/members/"]


@pytest.mark.parametrize("url", UNREACHABLE_URLS)
def test_anonymous_is_401_before_the_organization_is_told(org_a, api, url):
    """Without credentials nothing tells whether a slug or a host names an organization: the same 401."""
    responses = [
        api.get(url, HTTP_X_ORGANIZATION=org_a.slug),
        api.get(url, HTTP_X_ORGANIZATION="no-such-organization"),
        api.get(url, HTTP_HOST=f"{org_a.slug}.localhost"),
        api.get(url, HTTP_HOST="no-such-organization.localhost"),
    ]
    assert {response.status_code for response in responses} == {401}
    assert {response.content for response in responses} == {responses[0].content}
    assert {response["WWW-Authenticate"] for response in responses} == {responses[0]["WWW-Authenticate"]}


@pytest.mark.parametrize("url", UNREACHABLE_URLS)
def test_every_organization_out_of_reach_is_the_same_404_byte_for_byte(org_a, org_b, owner_a, owner_b, url):
    """Unknown, foreign (by header or host), suspended or deleted, or another organization than the API key's:
    one 404, identical to the byte."""
    from identity.apikeys import apikey_create

    signed_in = client_for(owner_a)
    _key, secret = apikey_create(organization=org_a, name="Zapier", scopes={"crm.lead.view": "all"}, actor=owner_a)
    unknown = signed_in.get(url, HTTP_X_ORGANIZATION="no-such-organization")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "organization_not_found"
    assert unknown["Content-Type"] == "application/problem+json"
    others = {
        "unknown, upper case": signed_in.get(url, HTTP_X_ORGANIZATION="NO-SUCH-ORGANIZATION"),
        "foreign by header": signed_in.get(url, HTTP_X_ORGANIZATION=org_b.slug),
        "foreign by host": signed_in.get(url, HTTP_HOST=f"{org_b.slug}.localhost"),
        "unknown by host": signed_in.get(url, HTTP_HOST="no-such-organization.localhost"),
        "another than the key's": APIClient().get(url, HTTP_X_API_KEY=secret, HTTP_X_ORGANIZATION=org_b.slug),
        "unknown to the key": APIClient().get(url, HTTP_X_API_KEY=secret, HTTP_X_ORGANIZATION="no-such-org"),
    }
    organization_suspend(organization=org_b)
    others["suspended, a member"] = client_for(owner_b, org_b).get(url)
    organization_delete(organization=org_b)
    others["deleted, a member"] = client_for(owner_b, org_b).get(url)
    for name, response in others.items():
        assert (name, response.status_code, response.content) == (name, 404, unknown.content)
        assert (name, response["Content-Type"]) == (name, unknown["Content-Type"])
