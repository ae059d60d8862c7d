"""The Celery app. Every task runs in the schema of the organization that queued it.

Tasks are tenant tasks by default (:class:`TenantTask`): queued inside a request or task of an organization,
they carry its schema in the message headers, and they refuse to run in ``public``. Control-plane work
(e-mail, provisioning, fan-out from beat) declares ``base=PublicTask`` and always runs in ``public``.
"""

import os

from celery.signals import worker_process_init
from django.db import connection
from tenant_schemas_celery.app import CeleryApp
from tenant_schemas_celery.task import TenantTask as _SchemaTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

PUBLIC_SCHEMA = "public"


class MissingTenantError(RuntimeError):
    """A tenant task was queued or delivered without an organization's schema."""


class TenantTask(_SchemaTask):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    retry_backoff = True
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 8

    def apply_async(self, args=None, kwargs=None, **options):
        headers = options.get("headers") or {}
        if headers.get("_schema_name", connection.schema_name) == PUBLIC_SCHEMA:
            raise MissingTenantError(f"{self.name} needs an organization; it was queued from the public schema")
        return super().apply_async(args, kwargs, **options)

    def __call__(self, *args, **kwargs):
        if connection.schema_name == PUBLIC_SCHEMA:
            raise MissingTenantError(f"{self.name} arrived without an organization; refusing to run in public")
        return super().__call__(*args, **kwargs)


class PublicTask(_SchemaTask):
    """A control-plane task: always runs in the public schema, whoever queued it."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    retry_backoff = True
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 8

    def apply_async(self, args=None, kwargs=None, **options):
        options["headers"] = {**(options.get("headers") or {}), "_schema_name": PUBLIC_SCHEMA}
        return super().apply_async(args, kwargs, **options)

    def apply(self, args=None, kwargs=None, **options):
        options["headers"] = {**(options.get("headers") or {}), "_schema_name": PUBLIC_SCHEMA}
        return super().apply(args, kwargs, **options)


app = CeleryApp("crm", task_cls=TenantTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _fresh_connections(**kwargs) -> None:
    # Forked worker processes must not share the parent's database connection.
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()
