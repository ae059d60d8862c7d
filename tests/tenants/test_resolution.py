import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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
