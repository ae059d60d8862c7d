"""The Celery app. Every task runs in the schema of the organization that queued it.

Tasks are tenant tasks by default (:class:`TenantTask`): queued inside a request or task of an organization,
they carry its schema in the message headers, and they refuse to run in ``public``. Control-plane work
(e-mail, provisioning, fan-out from beat) declares ``base=PublicTask`` and always runs in ``public``.

Publishing goes through the broker's breaker (:mod:`config.breaker`): a dead or frozen broker costs a bounded
wait (the socket timeout, one retry: settings) to one publish per process and backoff period; the others are
refused at once with :class:`~config.breaker.Unavailable`, and what the message was for is picked up by the
beat sweep (webhooks) or logged by the caller. Workers keep no read timeout (see below).

A task that declares ``periodic=True`` is run by beat; ``tests/test_periodic.py`` checks that every such task
has an entry in ``CELERY_BEAT_SCHEDULE`` and every entry names a registered task.
"""

import os

import kombu.exceptions
import redis.exceptions
from celery.signals import celeryd_init, worker_process_init
from celery.utils.time import get_exponential_backoff_interval
from django.db import connection
from tenant_schemas_celery.app import CeleryApp, get_schema_name_from_task, switch_schema
from tenant_schemas_celery.task import TenantTask as _SchemaTask

from .breaker import breaker_for
from .outages import database_unreachable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

PUBLIC_SCHEMA = "public"
# What a failed publish raises: kombu wraps the transport's connection errors after its retries.
PUBLISH_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class MissingTenantError(RuntimeError):
    """A tenant task was queued or delivered without an organization's schema."""


class _Task(_SchemaTask):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    retry_backoff = True
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
        """Seconds before the next retry, by the task's own policy (as ``autoretry_for`` computes it)."""
        factor = self.retry_backoff if isinstance(self.retry_backoff, int) and self.retry_backoff > 1 else 1
        return get_exponential_backoff_interval(
            factor=factor, retries=self.request.retries, maximum=self.retry_backoff_max, full_jitter=self.retry_jitter
        )


class TenantTask(_Task):
    abstract = True

    def apply_async(self, args=None, kwargs=None, **options):
        headers = options.get("headers") or {}
        if headers.get("_schema_name", connection.schema_name) == PUBLIC_SCHEMA:
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
        from tenants.models import Organization

        try:
            switch_schema(self, kwargs)
        except Organization.DoesNotExist as exc:
            raise MissingTenantError(f"{self.name}: no organization has the schema {schema!r}") from exc
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            retry = {"countdown": self.backoff(), "max_retries": self.request.retries + 1}
            raise self.retry(exc=exc, headers={"_schema_name": schema}, **retry) from exc
        if connection.schema_name != schema:
            raise MissingTenantError(f"{self.name} could not switch to the schema {schema!r}")


class PublicTask(_Task):
    """A control-plane task: always runs in the public schema, whoever queued it."""

    abstract = True

    def apply_async(self, args=None, kwargs=None, **options):
        options["headers"] = {**(options.get("headers") or {}), "_schema_name": PUBLIC_SCHEMA}
        return super().apply_async(args, kwargs, **options)

    def apply(self, args=None, kwargs=None, **options):
        options["headers"] = {**(options.get("headers") or {}), "_schema_name": PUBLIC_SCHEMA}
        return super().apply(args, kwargs, **options)


app = CeleryApp("crm", task_cls=TenantTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def _workers_wait_out_a_frozen_broker(conf=None, **kwargs) -> None:
    """The socket timeout bounds what publishing costs a request; a worker waits for a frozen broker instead.

    A worker whose acknowledgement timed out against a frozen Redis dropped that connection and never listened
    again (measured: tests/faults/test_redis.py); without a read timeout it resumes when Redis does. kombu's
    ``health_check_interval`` still drops a consuming connection that stays silent (a half-open one)."""
    conf.broker_transport_options = {
        name: value for name, value in conf.broker_transport_options.items() if name != "socket_timeout"
    }


@worker_process_init.connect
def _fresh_connections(**kwargs) -> None:
    # Forked worker processes must not share the parent's database connection.
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()
