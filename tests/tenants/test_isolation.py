"""Hard isolation: what organization A stores cannot be seen or reached through organization B."""

import pytest

from crm.models import Lead

from ..conftest import client_for
from ..factories import make_member, make_user

pytestmark = pytest.mark.django_db

SECRET = "Only-In-A Lead"


@pytest.fixture
def lead_of_a(as_owner_a):
    response = as_owner_a.post("/api/v1/leads/", {"name": SECRET, "email": "only-in-a@example.test"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _assert_unreachable(client, lead, **extra):
    """Through ``client`` the lead of A is neither listed, found, changed nor deleted."""
    listed = client.get("/api/v1/leads/", {"page_size": 100}, **extra)
    assert listed.status_code == 200
    assert SECRET not in {row["name"] for row in listed.json()["results"]}
    assert client.get("/api/v1/leads/", {"search": "only-in-a"}, **extra).json()["count"] == 0

    url = f"/api/v1/leads/{lead['id']}/"
    detail = client.get(url, **extra)
    # B's own sequence may have handed out the same id: then it is B's row, never A's.
    assert detail.status_code == 404 or detail.json()["name"] != SECRET
    client.patch(url, {"name": "Hijacked"}, format="json", **extra)
    client.delete(url, **extra)


def _assert_untouched(org_a, in_tenant, lead):
    with in_tenant(org_a):
        stored = Lead.objects.get(pk=lead["id"])
    assert stored.name == SECRET


def test_a_member_of_b_cannot_reach_a_through_the_header_of_b(lead_of_a, org_a, org_b, owner_b, in_tenant):
    _assert_unreachable(client_for(owner_b, org_b), lead_of_a)
    _assert_untouched(org_a, in_tenant, lead_of_a)


def test_a_member_of_b_cannot_reach_a_through_the_host_of_b(lead_of_a, org_a, org_b, owner_b, in_tenant):
    _assert_unreachable(client_for(owner_b), lead_of_a, HTTP_HOST=f"{org_b.slug}.localhost")
    _assert_untouched(org_a, in_tenant, lead_of_a)


def test_a_member_of_both_sees_only_the_organization_addressed(lead_of_a, org_a, org_b, in_tenant):
    both = make_user()
    make_member(user=both, organization=org_a, role="admin")
    make_member(user=both, organization=org_b, role="admin")
    _assert_unreachable(client_for(both, org_b), lead_of_a)
    found = client_for(both, org_a).get(f"/api/v1/leads/{lead_of_a['id']}/")
    assert found.status_code == 200
    assert found.json()["name"] == SECRET
    _assert_untouched(org_a, in_tenant, lead_of_a)


@pytest.mark.parametrize("addressing", ["header", "host"])
def test_a_token_of_b_addressed_to_a_is_404(lead_of_a, org_a, owner_b, addressing, in_tenant):
    client = client_for(owner_b)
    extra = {"HTTP_X_ORGANIZATION": org_a.slug} if addressing == "header" else {"HTTP_HOST": f"{org_a.slug}.localhost"}
    url = f"/api/v1/leads/{lead_of_a['id']}/"
    for response in (
        client.get("/api/v1/leads/", **extra),
        client.get(url, **extra),
        client.patch(url, {"name": "Hijacked"}, format="json", **extra),
        client.delete(url, **extra),
        client.post("/api/v1/leads/", {"name": "Planted"}, format="json", **extra),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "organization_not_found"
    _assert_untouched(org_a, in_tenant, lead_of_a)
    with in_tenant(org_a):
        assert not Lead.objects.filter(name="Planted").exists()


def test_the_orm_of_b_does_not_see_the_rows_of_a(lead_of_a, org_b, in_tenant):
    with in_tenant(org_b):
        assert not Lead.objects.filter(name=SECRET).exists()


def test_the_default_cache_is_keyed_by_organization(org_a, org_b, in_tenant):
    from django.core.cache import cache

    with in_tenant(org_a):
        cache.set("dashboard", "figures of A", 60)
    with in_tenant(org_b):
        assert cache.get("dashboard") is None
        cache.set("dashboard", "figures of B", 60)
    with in_tenant(org_a):
        assert cache.get("dashboard") == "figures of A"
