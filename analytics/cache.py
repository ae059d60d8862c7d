"""Report results, cached per organization and scope, and invalidated by the changes that move them.

Keys live in the ``default`` cache, whose keys carry the organization's schema. Each embeds:

- the organization's **analytics version**, a token replaced whenever an event a figure depends on is recorded in
  the outbox (``analytics.events``, now and again after the commit, as ``invalidate_decisions`` does) and after each
  snapshot, so a change shows on the next request;
- the caller's **scope** for each record type a figure reads (``all``, or the scope and the user's id): two Managers
  share entries, a Sales Rep has his own;
- a fingerprint of the **pipelines and stages** (names, order, probabilities), read with one query, since stage
  edits record no event;
- the organization's local **date** and the report's parameters.

Entries also expire after ``ANALYTICS_CACHE_SECONDS``, which bounds how long a figure that moves with the clock
alone (an overdue task, a deal without a next step) can lag. When Redis cannot be reached nothing is cached and
every request computes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import caches
from django.db import transaction

from config.db import transaction_with
from pipelines.models import Stage
from rbac.actor import Actor, SystemActor, require_actor

from .facts import ACTIVITY_VIEW, DEAL_VIEW, LEAD_VIEW

VERSION_KEY = "analytics:version"
RECORD_PERMISSIONS = (DEAL_VIEW, LEAD_VIEW, ACTIVITY_VIEW)
T = TypeVar("T")


def _cache():
    return caches["default"]


def version() -> str | None:
    """The current analytics version of the organization (of the connection's schema), or None when the cache
    cannot tell it."""
    cache = _cache()
    found = cache.get(VERSION_KEY)
    if found is None:
        cache.add(VERSION_KEY, uuid.uuid4().hex, None)
        found = cache.get(VERSION_KEY)
    return found


def _renew() -> None:
    _cache().set(VERSION_KEY, uuid.uuid4().hex, None)


class _RenewAfterCommit:
    """The after-commit renewal of one transaction (it knows whether it ran, as test harnesses keep it listed)."""

    done = False

    def __call__(self) -> None:
        self.done = True
        _renew()


def invalidate() -> None:
    """Invalidate every cached figure of the organization: now (the transaction's own reads), and again once the
    transaction commits (a request that read the old data in between cached it under the version replaced at
    commit). One after-commit renewal per transaction, however many changes it makes."""
    _renew()
    connection = transaction.get_connection()
    pending = connection.in_atomic_block and any(
        isinstance(hook, _RenewAfterCommit) and not hook.done for _sids, hook, _robust in connection.run_on_commit
    )
    if not pending:
        transaction.on_commit(_RenewAfterCommit(), robust=True)


def scope_key(actor: Actor) -> str:
    actor = require_actor(actor)
    if isinstance(actor, SystemActor):
        return "system"
    scopes = [str(actor.scope(permission)) for permission in RECORD_PERMISSIONS]
    shared = all(scope == "all" for scope in scopes)
    return ",".join(scopes) + ("" if shared else f":{actor.user_id}")


def stages_fingerprint() -> str:
    rows = Stage.objects.order_by("pk").values_list(
        "pk", "pipeline_id", "position", "probability", "kind", "name", "rotting_days", "pipeline__is_default"
    )
    return hashlib.sha1(repr(list(rows)).encode()).hexdigest()[:16]


@contextmanager
def without_jit():
    """A transaction whose queries PostgreSQL does not JIT-compile. Analytics queries are estimated costly (they
    aggregate many rows) and run in tens of milliseconds: compiling them cost more than running them (measured at a
    million deals: 191 ms of JIT for a 43 ms query)."""
    with transaction_with(jit="off"):
        yield


def computed(compute: Callable[[], T]) -> T:
    with without_jit():
        return compute()


def cached(actor, name: str, params: dict[str, Any], compute: Callable[[], T]) -> T:
    """``compute()``, or its result cached under the organization's version, the actor's scope and ``params``."""
    current = version()
    if current is None:
        return computed(compute)
    material = json.dumps([current, name, scope_key(actor), stages_fingerprint(), params], default=str, sort_keys=True)
    key = "analytics:result:" + hashlib.sha256(material.encode()).hexdigest()
    found = _cache().get(key)
    if found is not None:
        return found
    result = computed(compute)
    _cache().set(key, result, settings.ANALYTICS_CACHE_SECONDS)
    return result
