"""Last-owner protection holds under concurrency: two owners demoting each other at once leave one owner."""

import threading

import pytest
from django.db import connections

from rbac.errors import LastOwner
from rbac.models import Membership
from rbac.services import membership_change_role, membership_set_active, system_role
from tenants.services import organization_delete, organization_purge

from ..conftest import committed
from ..factories import make_member, make_organization, make_user

pytestmark = pytest.mark.django_db


def _setup():
    organization = make_organization(name="Owner race")
    owners = [make_user(), make_user()]
    memberships = [make_member(user=user, organization=organization, role="owner") for user in owners]
    return organization, owners, memberships


def _teardown(organization, users):
    organization_delete(organization=organization)
    organization_purge(organization=organization)
    for user in users:
        user.delete()


def _race(changes):
    outcomes = []
    barrier = threading.Barrier(len(changes))

    def run(change):
        try:
            barrier.wait(10)
            change()
            outcomes.append("ok")
        except LastOwner:
            outcomes.append("last_owner")
        except Exception as exc:  # a deadlock or anything else is a failure of the rule
            outcomes.append(f"error: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(change,)) for change in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(outcomes)


@pytest.mark.parametrize("how", ["demote", "deactivate"])
def test_two_owners_removing_each_other_at_once_leave_one(how):
    organization, users, (first, second) = committed(_setup)

    def change(membership):
        if how == "demote":
            return lambda: membership_change_role(membership=membership, role=system_role("admin"), actor=None)
        return lambda: membership_set_active(membership=membership, active=False, actor=None)

    try:
        assert _race([change(first), change(second)]) == ["last_owner", "ok"]
        owners = committed(
            lambda: Membership.objects.filter(
                organization=organization, is_active=True, role__organization=None, role__key="owner"
            ).count()
        )
        assert owners == 1
    finally:
        committed(_teardown, organization, users)
