"""Sign-up: a user, their organization, its owner membership, subscription and default pipeline, all or nothing."""

import pytest
from django.db import connection

from identity.models import User
from pipelines.models import Pipeline
from rbac.choices import SystemRole
from rbac.models import Membership
from tenants.models import Organization

from ..factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

URL = "/api/v1/auth/register/"


def _payload(email, **overrides):
    return {
        "email": email,
        "password": DEFAULT_PASSWORD,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "organization_name": "Analytical Engines",
        **overrides,
    }


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cursor.fetchall()}


def test_sign_up_creates_user_organization_owner_and_default_pipeline(api, unique_email, in_tenant):
    email = unique_email("ada")
    response = api.post(URL, _payload(email.upper()), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["access"]
    assert body["refresh"]
    assert body["user"]["email"] == email  # stored lower-cased
    user = User.objects.get(email=email)
    assert user.check_password(DEFAULT_PASSWORD)
    assert user.password != DEFAULT_PASSWORD
    organization = Organization.objects.get(pk=body["organization"]["id"])
    assert organization.name == "Analytical Engines"
    assert [org["id"] for org in body["organizations"]] == [organization.pk]
    membership = Membership.objects.get(user=user, organization=organization)
    assert membership.is_active
    assert membership.role.key == SystemRole.OWNER
    assert organization.schema_name in _schemas()
    with in_tenant(organization):
        assert Pipeline.objects.filter(is_default=True).count() == 1

    me = api.get("/api/v1/auth/me/", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.status_code == 200
    assert me.json()["email"] == email


def test_sign_up_naming_an_organization_creates_the_new_one_in_public(api, unique_email, org_a, in_tenant):
    """A client that sends its usual ``X-Organization`` with the sign-up: the new organization is still written in
    the public schema (django-tenants refuses to save one from another organization's schema: that was a 500)."""
    response = api.post(URL, _payload(unique_email("ada")), format="json", HTTP_X_ORGANIZATION=org_a.slug)
    assert response.status_code == 201, response.content
    organization = Organization.objects.get(pk=response.json()["organization"]["id"])
    assert organization.pk != org_a.pk
    with in_tenant(organization):
        assert Pipeline.objects.filter(is_default=True).count() == 1


def test_duplicate_email_is_409_whatever_the_case(api, unique_email):
    email = unique_email("dup")
    assert api.post(URL, _payload(email), format="json").status_code == 201
    organizations = Organization.objects.count()
    response = api.post(URL, _payload(email.upper()), format="json")
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["errors"][0]["code"]) == ("duplicate", "email_taken")
    assert body["errors"][0]["field"] == "email"
    assert User.objects.filter(email__iexact=email).count() == 1
    assert Organization.objects.count() == organizations


@pytest.mark.parametrize("password", ["short1", "password123", "1234567890123", "ada-lovelace"])
def test_weak_password_is_400_and_creates_nothing(api, unique_email, password):
    email = unique_email("weak")
    organizations = Organization.objects.count()
    response = api.post(URL, _payload(email, password=password), format="json")
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["errors"][0]["code"]) == ("validation_error", "weak_password")
    assert body["errors"][0]["field"] == "password"
    assert not User.objects.filter(email=email).exists()
    assert Organization.objects.count() == organizations


def test_missing_fields_are_named(api):
    response = api.post(URL, {"email": "not-an-email"}, format="json")
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"email", "password", "first_name", "organization_name"}


def test_failed_provisioning_leaves_no_user_organization_or_schema(api, unique_email, monkeypatch):
    """The schema is created for real (no standby pool), then a later step fails: everything is rolled back."""
    import identity.services
    import tenants.services

    monkeypatch.setattr(tenants.services, "_claim_standby", lambda: None)
    seen = {}

    def fail(*, organization, **kwargs):
        seen["schema"] = organization.schema_name
        seen["pk"] = organization.pk
        seen["existed"] = organization.schema_name in _schemas()
        raise RuntimeError("billing is down")

    monkeypatch.setattr(identity.services, "subscription_start", fail)
    email = unique_email("rollback")
    users, organizations, schemas = User.objects.count(), Organization.objects.count(), _schemas()
    api.raise_request_exception = False
    response = api.post(URL, _payload(email), format="json")

    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert seen["existed"], "the schema was created before the failure, so the test exercises its rollback"
    assert not User.objects.filter(email=email).exists()
    assert User.objects.count() == users
    assert not Organization.objects.filter(pk=seen["pk"]).exists()
    assert Organization.objects.count() == organizations
    assert seen["schema"] not in _schemas()
    assert _schemas() == schemas
