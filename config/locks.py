"""PostgreSQL advisory locks: the one registry of lock namespaces, and the one way to take a lock.

A lock is named by its namespace (below: each in one place, so two uses never collide) and by the parts that
tell one lock of the namespace from another (an organization, a limit, a job). The owner of a lock exposes a
function that takes it (``billing.services.lock_limit``, ...); nobody else derives its key.

- :func:`xact_lock` waits for the lock and holds it until the transaction ends (commit or rollback).
- :func:`session_try_lock` takes it now or not at all, for as long as the block runs (or the connection lives).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from enum import IntEnum, unique

from django.db import connection


@unique
class LockNamespace(IntEnum):
    MEMBERS = 0x3E3B  # rbac: membership changes of one organization (the last-owner rule)
    PLAN_LIMIT = 0x5EA7  # billing: everything counting one limit of one organization
    DEFAULT_PIPELINE = 0x91E1  # pipelines: the default pipeline of one schema
    IMPORT_RUN = 0x1A7B  # crm: the runner of one import job
    CAMPAIGN_CLAIM = 0x0CA3  # campaigns: one runner's claim on deliveries, held while it sends
    ANALYTICS_SNAPSHOT = 0xA7A1  # analytics: the snapshot of one schema


def _key(parts: tuple[object, ...]) -> int:
    """A signed 32-bit key for the parts (PostgreSQL's two-key form takes two int4)."""
    return zlib.crc32(":".join(str(part) for part in parts).encode()) - 2**31


def xact_lock(namespace: LockNamespace, *parts: object) -> None:
    """Wait for the lock ``(namespace, parts)``; it is held until the current transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [int(namespace), _key(parts)])


@contextlib.contextmanager
def session_try_lock(namespace: LockNamespace, *parts: object) -> Iterator[bool]:
    """Try the lock ``(namespace, parts)`` without waiting; yields whether it was taken. Released when the block
    ends, or when the connection dies."""
    key = _key(parts)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [int(namespace), key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [int(namespace), key])
