"""The Celery app, on top of every app: it binds the tasks each app declares with ``celery.shared_task`` (bases,
retry policy and queueing after commit: :mod:`config.tasks`). Every task runs in the schema of the organization
that queued it.

Workers keep no read timeout on the broker (see below).
"""

import os

from celery.signals import celeryd_init, worker_process_init
from tenant_schemas_celery.app import CeleryApp

from .tasks import TenantTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

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


@worker_process_init.connect
def _loaded_objects_frozen(**kwargs) -> None:
    """A worker's child has what its tasks need loaded (the parent imported them before forking): left out of the
    garbage collector's full collections (``config.memory.freeze_loaded``)."""
    from .memory import freeze_loaded

    freeze_loaded()
