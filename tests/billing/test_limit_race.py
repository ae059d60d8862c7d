"""Limits hold under concurrency: committed data, two connections racing for the last unit."""

import threading

import pytest
from django.db import connections

from billing.errors import PlanLimitReached
from billing.models import Override
from billing.services import override_save
from rbac.services import membership_create
from tenants.services import organization_delete, organization_purge

from ..conftest import committed
from ..factories import make_member, make_organization, make_user

pytestmark = pytest.mark.django_db


def _setup():
    organization = make_organization(name="Seat race")
    owner = make_user()
    make_member(user=owner, organization=organization, role="owner")
    override_save(override=Override(organization=organization, limit="seats", limit_value=2), actor=None)
    return organization, [owner, make_user(), make_user()]


def _teardown(organization, users):
    organization_delete(organization=organization)
    organization_purge(organization=organization)
    for user in users:
        user.delete()


def test_concurrent_creates_at_n_minus_one_cannot_overshoot():
    """Two members added at once with one seat left: exactly one gets it."""
    organization, users = committed(_setup)
    outcomes = []
    barrier = threading.Barrier(2)

    def add(user):
        try:
            barrier.wait(10)
            membership_create(user=user, organization=organization, role="viewer")
            outcomes.append("ok")
        except PlanLimitReached:
            outcomes.append("limit")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add, args=(user,)) for user in users[1:]]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == ["limit", "ok"]
        assert committed(lambda: organization.memberships.filter(is_active=True).count()) == 2
    finally:
        committed(_teardown, organization, users)
