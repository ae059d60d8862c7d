"""Advisory locks (config/locks.py): one registry of namespaces, one key derivation, used by every owner."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing.features import Limit
from billing.services import lock_limit
from config.locks import LockNamespace, session_try_lock, xact_lock

from .conftest import committed

pytestmark = pytest.mark.django_db


def _free(namespace: LockNamespace, *parts) -> bool:
    """Whether another connection could take the lock now."""

    def attempt():
        with session_try_lock(namespace, *parts) as acquired:
            return acquired

    return committed(attempt)


def test_a_transaction_lock_is_held_until_the_transaction_ends(org_a):
    with transaction.atomic():
        xact_lock(LockNamespace.MEMBERS, "members", org_a.pk)
        assert not _free(LockNamespace.MEMBERS, "members", org_a.pk)
        assert _free(LockNamespace.MEMBERS, "members", org_a.pk + 1)  # another organization's lock
        assert _free(LockNamespace.PLAN_LIMIT, "members", org_a.pk)  # the same parts in another namespace


def test_the_import_and_billing_take_one_and_the_same_limit_lock(org_a):
    """The import counts contacts under billing's own lock (crm/imports/batches.py calls lock_limit), so a
    change of billing's key cannot silently part them."""
    with transaction.atomic():
        lock_limit(organization=org_a, limit=Limit.CONTACTS)
        assert not _free(LockNamespace.PLAN_LIMIT, org_a.pk, Limit.CONTACTS)


def test_a_session_lock_is_taken_once_and_released_after_the_block():
    with session_try_lock(LockNamespace.IMPORT_RUN, "import", "job-1") as first:
        assert first
        assert not _free(LockNamespace.IMPORT_RUN, "import", "job-1")
    assert _free(LockNamespace.IMPORT_RUN, "import", "job-1")
