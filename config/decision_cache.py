"""Authorization decisions cached under versioned keys: the machinery shared by billing (an organization's
entitlements) and rbac (a member's or an API key's access).

Every entry is cached under a key that embeds two version tokens: one per organization (changed by any role,
membership, API key, subscription or override change of that organization) and one global (changed when an
operator edits a plan). A change therefore takes effect on the very next request, and a warm request costs no
SQL query at all. Each process also keeps the entries it has read (they cannot change under their versioned
keys), so a warm decision costs a single cache round trip: reading the two version tokens. Within a request
(:func:`versions_read_once`, opened by the tenant middleware) those are read once, so its further decisions cost
no round trip; a request sees the versions of its first decision, the next request any change made meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from time import time as clock
from typing import Any

from django.core.cache import caches
from django.db import transaction

CACHE_TTL_SECONDS = 300
GLOBAL = "global"


def _cache():
    return caches["control"]


def _version_key(scope: str | int) -> str:
    return f"authz:version:{scope}"


# The version tokens a request has read, by organization (None: outside a request, every decision reads them).
_READ: ContextVar[dict[int, str] | None] = ContextVar("decision_versions", default=None)


@contextmanager
def versions_read_once() -> Iterator[None]:
    """Within: each organization's version tokens are read from the cache once; a change made within is seen
    (:func:`invalidate_decisions` forgets them), and so is one made elsewhere by a ``fresh`` decision."""
    token = _READ.set({})
    try:
        yield
    finally:
        _READ.reset(token)


def _versions(organization_id: int, *, fresh: bool = False) -> str | None:
    """The organization's and the global version tokens, or None when the cache cannot tell them."""
    read = _READ.get()
    if read is not None and not fresh and organization_id in read:
        return read[organization_id]
    versions = _read_versions(organization_id)
    if read is not None and versions is not None:
        read[organization_id] = versions
    return versions


def _read_versions(organization_id: int) -> str | None:
    cache = _cache()
    keys = [_version_key(organization_id), _version_key(GLOBAL)]
    found = cache.get_many(keys)
    for key in keys:
        if key not in found:
            cache.add(key, uuid.uuid4().hex, None)
    if len(found) < len(keys):
        found = cache.get_many(keys)
    if len(found) < len(keys):
        return None
    return ":".join(str(found[key]) for key in keys)


def invalidate_decisions(*, organization_id: int | None = None) -> None:
    """Outdate every cached decision about one organization (None: about every organization, for plan edits):
    now, and again after commit, so no reader caches the pre-commit state."""
    key = _version_key(GLOBAL if organization_id is None else organization_id)

    def new_version() -> None:
        _cache().set(key, uuid.uuid4().hex, None)
        read = _READ.get()
        if read:
            read.clear()

    new_version()
    transaction.on_commit(new_version)


# Entries under keys that embed the version tokens never change while they live: a change makes new keys. So this
# process keeps the ones it has read, each until the shared entry's own end (stored with it), and a warm decision
# costs one cache round trip (the versions) instead of two. When the cache cannot tell the versions (unreachable),
# nothing is read, written or kept: every decision is made from PostgreSQL.
_LOCAL: dict[str, tuple[float, object]] = {}
_LOCAL_MAX_ENTRIES = 4096


def remembered(
    kind: str, scope: str, organization_id: int, compute: Callable[[], tuple[Any, int]], *, fresh: bool = False
) -> Any:
    """The entry ``authz:<kind>:<scope>`` under the organization's current versions. ``compute() -> (value, ttl)``
    runs on a miss; the value is shared through the cache for ``ttl`` seconds (stored as ``(until, value)``) and
    kept here no longer. Values are shared between the requests of a process: they are frozen, never mutated.
    ``fresh``: the versions are read again, even within :func:`versions_read_once`."""
    versions = _versions(organization_id, fresh=fresh)
    if versions is None:
        return compute()[0]
    key = f"authz:{kind}:{scope}:{versions}"
    now = clock()
    local = _LOCAL.get(key)
    if local is not None and local[0] > now:
        return local[1]
    stored = _cache().get(key)
    if stored is None:
        value, ttl = compute()
        stored = (now + ttl, value)
        _cache().set(key, stored, ttl)
    if stored[0] > now:
        if len(_LOCAL) >= _LOCAL_MAX_ENTRIES:
            for old in [k for k, (until, _value) in _LOCAL.items() if until <= now]:
                _LOCAL.pop(old, None)
            if len(_LOCAL) >= _LOCAL_MAX_ENTRIES:
                _LOCAL.clear()
        _LOCAL[key] = stored
    return stored[1]
