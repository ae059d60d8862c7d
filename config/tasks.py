"""Background tasks: the task bases every app's tasks use, their one retry policy, and queueing after commit.

Apps declare tasks with ``celery.shared_task``; the Celery app (:mod:`config.celery`, on top of every app) binds
them. Tasks are tenant tasks by default (:class:`TenantTask`, the app's ``task_cls``): queued inside a request or
task of an organization, they carry its schema in the message headers, and they refuse to run in ``public``.
Control-plane work (e-mail, provisioning, fan-out from beat) declares ``base=PublicTask`` and always runs in
``public``.

Publishing goes through the broker's breaker (:mod:`config.breaker`): a dead or frozen broker costs a bounded
wait (the socket timeout, one retry: settings) to one publish per process and backoff period; the others are
refused at once with :class:`~config.breaker.Unavailable`. A write never fails because of it:
:func:`queue_after_commit` publishes once the transaction has committed and logs what it could not queue.

A task that declares ``periodic=True`` is run by beat; ``tests/test_periodic.py`` checks that every such task
has an entry in ``CELERY_BEAT_SCHEDULE`` and every entry names a registered task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from tenant_schemas_celery.app import get_schema_name_from_task, switch_schema
from tenant_schemas_celery.task import TenantTask as _SchemaTask

from .breaker import Unavailable, breaker_for
from .db import connection
from .outages import database_unreachable

logger = logging.getLogger(__name__)

PUBLIC_SCHEMA = "public"
SCHEMA_HEADER = "_schema_name"
# What a failed publish raises: kombu wraps the transport's connection errors after its retries.
PUBLISH_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class MissingTenantError(RuntimeError):
    """A tenant task was queued or delivered without an organization's schema."""


class _Task(_SchemaTask):
    """The one retry policy: exponential backoff with full jitter, capped, a bounded number of tries. Celery's
    ``autoretry_for`` reads these attributes; explicit retries go through :meth:`retry_later`, which computes the
    wait the same way."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    retry_backoff = True  # factor 1: 1, 2, 4, 8 … seconds (before jitter)
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 8
    periodic = False  # run by beat (see the module docstring)

    def apply_async(self, args=None, kwargs=None, **options):
        if self.app.conf.task_always_eager:  # runs here and now: no broker involved
            return super().apply_async(args, kwargs, **options)
        with breaker_for(self.app.conf.broker_url).guard("broker", f"{self.name} not queued", errors=PUBLISH_ERRORS):
            return super().apply_async(args, kwargs, **options)

    def backoff(self) -> float:
        """Seconds before the next try, by the policy above, exactly as ``autoretry_for`` computes them."""
        return get_exponential_backoff_interval(
            factor=int(max(1.0, float(self.retry_backoff))),
            retries=self.request.retries,
            maximum=self.retry_backoff_max,
            full_jitter=self.retry_jitter,
        )

    def retry_later(self, exc: BaseException, **options: Any):
        """``raise self.retry_later(exc)``: try again after :meth:`backoff`, within ``max_retries``."""
        return self.retry(exc=exc, countdown=self.backoff(), **options)


class TenantTask(_Task):
    abstract = True

    def apply_async(self, args=None, kwargs=None, **options):
        headers = options.get("headers") or {}
        if headers.get(SCHEMA_HEADER, connection.schema_name) == PUBLIC_SCHEMA:
            raise MissingTenantError(f"{self.name} needs an organization; it was queued from the public schema")
        return super().apply_async(args, kwargs, **options)

    def __call__(self, *args, **kwargs):
        called_directly = self.request.called_directly  # a plain function call runs where its caller is
        schema = connection.schema_name if called_directly else get_schema_name_from_task(self, kwargs)
        if not schema or schema == PUBLIC_SCHEMA:
            raise MissingTenantError(f"{self.name} arrived without an organization; refusing to run in public")
        if connection.schema_name != schema:
            self._reach_schema(schema, kwargs)
        return super().__call__(*args, **kwargs)

    def _reach_schema(self, schema: str, kwargs) -> None:
        """The switch before the task (a ``task_prerun`` receiver, whose errors Celery only logs) failed: try
        again, and while the database is unreachable retry the task later, for as long as the outage lasts
        (it has not run, so running it later is always right; the wait grows to ``retry_backoff_max``). An
        organization that no longer exists fails the task loudly."""
        try:
            switch_schema(self, kwargs)
        except ObjectDoesNotExist as exc:  # no organization has this schema
            raise MissingTenantError(f"{self.name}: no organization has the schema {schema!r}") from exc
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            raise self.retry_later(exc, headers={SCHEMA_HEADER: schema}, max_retries=self.request.retries + 1) from exc
        if connection.schema_name != schema:
            raise MissingTenantError(f"{self.name} could not switch to the schema {schema!r}")


class PublicTask(_Task):
    """A control-plane task: always runs in the public schema, whoever queued it."""

    abstract = True

    def apply_async(self, args=None, kwargs=None, **options):
        options["headers"] = {**(options.get("headers") or {}), SCHEMA_HEADER: PUBLIC_SCHEMA}
        return super().apply_async(args, kwargs, **options)

    def apply(self, args=None, kwargs=None, **options):
        options["headers"] = {**(options.get("headers") or {}), SCHEMA_HEADER: PUBLIC_SCHEMA}
        return super().apply(args, kwargs, **options)


def queue_after_commit(
    task: Task,
    *args: Any,
    on_unavailable: Callable[[], None] | None = None,
    in_schema: str | None = None,
    **kwargs: Any,
) -> None:
    """Queue ``task(*args, **kwargs)`` once the current transaction commits (now, outside one), in the schema
    the connection works in now (or ``in_schema``: an organization's, from ``public``). Never inside the
    transaction: a rolled-back write queues nothing.

    The write has committed by then, so a broker that cannot take the message does not fail the request: it is
    logged, and ``on_unavailable`` (if given) records what the message was for (an import marked failed, …).
    A tenant task queued for ``public`` is a bug and fails at once, inside the transaction."""
    schema = in_schema or connection.schema_name
    if isinstance(task, TenantTask) and schema == PUBLIC_SCHEMA:
        raise MissingTenantError(f"{task.name} needs an organization; it was queued from the public schema")

    def queue() -> None:
        try:
            task.apply_async(args, kwargs, headers={SCHEMA_HEADER: schema})
        except Unavailable:
            logger.warning("%s not queued: the broker is unreachable", task.name)
            if on_unavailable is not None:
                on_unavailable()

    queue.__qualname__ = f"queue {task.name}"  # Django names a failing hook by it
    transaction.on_commit(queue, robust=True)
