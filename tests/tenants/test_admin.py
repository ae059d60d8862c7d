"""Operators manage organizations in the admin, through the same services as the API."""

import pytest
from django.test import Client
from django_tenants.utils import schema_exists

from tenants.choices import OrganizationStatus
from tenants.models import Organization
from tenants.services import standby_pool_refill

from ..factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    user = make_user(email="operator@ops.test")
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_changelist_shows_organizations_but_not_standby_schemas(operator, org_a):
    standby_pool_refill(size=1)
    standby = Organization.objects.filter(status=OrganizationStatus.STANDBY).first()
    response = operator.get("/admin/tenants/organization/", {"q": ""})
    assert response.status_code == 200
    assert org_a.slug in response.content.decode()
    assert standby.schema_name not in response.content.decode()
    assert operator.get(f"/admin/tenants/organization/{org_a.pk}/change/").status_code == 200
    assert operator.get("/admin/tenants/domain/").status_code == 200


def test_adding_an_organization_provisions_its_schema(operator):
    response = operator.post("/admin/tenants/organization/add/", {"name": "Made By Ops", "slug": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    organization = Organization.objects.get(slug="made-by-ops")
    assert organization.status == OrganizationStatus.ACTIVE
    assert schema_exists(organization.schema_name)
    assert organization.domains.get().domain == "made-by-ops.localhost"


def test_an_invalid_slug_is_an_error_not_a_crash(operator):
    response = operator.post("/admin/tenants/organization/add/", {"name": "Bad", "slug": "bad_slug"})
    assert response.status_code == 200
    assert "Use lower-case letters" in response.content.decode()
    assert not Organization.objects.filter(name="Bad").exists()


def test_actions_suspend_reactivate_and_delete(operator, unique_email):
    from tenants.services import organization_create

    organization = organization_create(name="Acted On", use_pool=False)
    url = "/admin/tenants/organization/"
    for action, status in [
        ("suspend", OrganizationStatus.SUSPENDED),
        ("reactivate", OrganizationStatus.ACTIVE),
        ("delete_organizations", OrganizationStatus.DELETED),
    ]:
        response = operator.post(url, {"action": action, "_selected_action": [organization.pk]})
        assert response.status_code == 302
        organization.refresh_from_db()
        assert organization.status == status
    assert schema_exists(organization.schema_name)  # purged later, after the grace period
