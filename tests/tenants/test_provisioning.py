"""Provisioning: standby pool, direct creation, DNS-safe names, delete then purge."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from django_tenants.utils import schema_exists

from config.api.errors import ValidationFailed
from tenants.choices import OrganizationStatus
from tenants.errors import SlugTaken
from tenants.models import Domain, Organization
from tenants.services import (
    organization_create,
    organization_delete,
    organization_purge,
    purge_due_organizations,
    standby_pool_refill,
)

from ..conftest import committed

pytestmark = pytest.mark.django_db


def _tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def _standby() -> list[Organization]:
    return list(Organization.objects.filter(status=OrganizationStatus.STANDBY).order_by("created_at", "pk"))


def test_sign_up_claims_the_oldest_standby_schema_and_queues_a_refill(
    django_capture_on_commit_callbacks, org_a, settings
):
    settings.TENANT_STANDBY_POOL_SIZE = 2
    Organization.objects.filter(status=OrganizationStatus.STANDBY).delete()
    assert standby_pool_refill(size=2) == 2
    oldest = _standby()[0]

    with django_capture_on_commit_callbacks(execute=True):
        organization = organization_create(name="Pooled Inc")

    assert organization.pk == oldest.pk
    assert organization.schema_name == oldest.schema_name
    assert organization.status == OrganizationStatus.ACTIVE
    assert organization.slug == "pooled-inc"
    assert Domain.objects.get(tenant=organization).domain == "pooled-inc.localhost"
    assert _tables(organization.schema_name) == _tables(org_a.schema_name)
    assert len(_standby()) == 2  # refilled after commit to TENANT_STANDBY_POOL_SIZE


def test_an_empty_pool_falls_back_to_creating_the_schema(org_a):
    Organization.objects.filter(status=OrganizationStatus.STANDBY).delete()
    organization = organization_create(name="Direct Ltd")
    assert organization.status == OrganizationStatus.ACTIVE
    assert schema_exists(organization.schema_name)
    assert _tables(organization.schema_name) == _tables(org_a.schema_name)


def test_names_are_dns_safe():
    organization = organization_create(name="Acme_Widgets & Co", use_pool=False)
    assert organization.slug == "acme-widgets-co"
    assert re.fullmatch(r"[a-z][a-z0-9]{1,62}", organization.schema_name)
    again = organization_create(name="Acme_Widgets & Co", use_pool=False)
    assert again.slug == "acme-widgets-co-2"
    reserved = organization_create(name="Admin", use_pool=False)
    assert reserved.slug == "admin-org"


@pytest.mark.parametrize("slug", ["with_underscore", "-leading", "UPPER!", "admin"])
def test_an_invalid_slug_is_refused(slug):
    with pytest.raises(ValidationFailed) as raised:
        organization_create(name="Bad slug", slug=slug, use_pool=False)
    assert raised.value.code == "invalid_slug"


def test_a_taken_slug_is_refused(org_a):
    with pytest.raises(SlugTaken):
        organization_create(name="Copy", slug=org_a.slug, use_pool=False)


def test_delete_suspends_and_purge_drops_the_schema_after_the_grace_period(settings):
    organization = organization_create(name="Short lived", use_pool=False)
    organization_delete(organization=organization)
    organization.refresh_from_db()
    assert organization.status == OrganizationStatus.DELETED
    assert schema_exists(organization.schema_name)

    assert purge_due_organizations() == []  # still within the grace period
    later = timezone.now() + timedelta(days=settings.TENANT_PURGE_AFTER_DAYS, seconds=1)
    assert purge_due_organizations(now=later) == [organization.schema_name]
    assert not schema_exists(organization.schema_name)
    assert not Organization.objects.filter(pk=organization.pk).exists()


def test_only_a_deleted_organization_can_be_purged():
    organization = organization_create(name="Still here", use_pool=False)
    with pytest.raises(Exception, match="Only a deleted organization"):
        organization_purge(organization=organization)
    assert schema_exists(organization.schema_name)


def test_concurrent_sign_ups_claim_different_standby_schemas():
    """Two sign-ups at once never share a schema: the claim skips rows another transaction holds."""

    def fill():
        Organization.objects.filter(status=OrganizationStatus.STANDBY).delete()
        standby_pool_refill(size=2)
        return {o.schema_name for o in _standby()}

    pool = committed(fill)
    claimed, barrier = [], threading.Barrier(2)

    def sign_up(index):
        try:
            barrier.wait(10)
            claimed.append(organization_create(name=f"Race {index}", use_pool=True).schema_name)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)  # each sign-up also refills the pool (eager in tests): slow on a loaded machine
        assert not any(thread.is_alive() for thread in threads)
        assert sorted(claimed) == sorted(pool)
    finally:

        def cleanup():
            for organization in Organization.objects.filter(schema_name__in=pool | set(claimed)):
                if organization.status != OrganizationStatus.DELETED:
                    organization.status = OrganizationStatus.DELETED
                    organization.save(update_fields=["status"])
                organization_purge(organization=organization)

        committed(cleanup)
