"""Data-plane tables live only in tenant schemas; tenant work never runs in public."""

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection

from config.tasks import MissingTenantError
from integrations.tasks import outbox_relay_task

pytestmark = pytest.mark.django_db


def _tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def _data_plane_tables() -> set[str]:
    tenant_only = [label for label in settings.TENANT_APPS if label not in settings.SHARED_APPS]
    return {
        model._meta.db_table
        for label in tenant_only
        for model in apps.get_app_config(label.rsplit(".", 1)[-1]).get_models(include_auto_created=True)
        if model._meta.managed
    }


def test_no_data_plane_table_exists_in_public(org_a):
    data_plane = _data_plane_tables()
    assert {"crm_lead", "pipelines_deal", "integrations_outboxevent"} <= data_plane
    assert _tables("public") & data_plane == set()
    assert data_plane <= _tables(org_a.schema_name)


def test_a_tenant_task_queued_from_public_fails_loudly():
    connection.set_schema_to_public()
    with pytest.raises(MissingTenantError, match="queued from the public schema"):
        outbox_relay_task.delay()


def test_a_tenant_task_delivered_without_a_schema_refuses_to_run():
    connection.set_schema_to_public()
    with pytest.raises(MissingTenantError, match="refusing to run in public"):
        outbox_relay_task()


def test_a_tenant_task_queued_in_an_organization_runs_there(org_a, in_tenant):
    with in_tenant(org_a):
        result = outbox_relay_task.delay()
    assert result.successful()


def _unreachable():
    import psycopg
    from django.db import OperationalError

    error = OperationalError("connection refused")
    error.__cause__ = psycopg.OperationalError("connection refused")
    return error


def test_a_tenant_task_that_cannot_reach_its_schema_is_retried_not_dropped(org_a, monkeypatch):
    """The schema switch before the task fails while the database is unreachable (Celery only logs it): the task
    is retried with its schema, and runs there once the database answers. tests/faults/ does it with a real
    worker and a stopped PostgreSQL."""
    task_class = type(outbox_relay_task._get_current_object())
    real = task_class.get_tenant_for_schema.__func__
    lookups = []

    def flaky(cls, schema_name):
        lookups.append(schema_name)
        if len(lookups) <= 2:  # the switch before the task, and the task's own attempt
            raise _unreachable()
        return real(cls, schema_name)

    monkeypatch.setattr(task_class, "get_tenant_for_schema", classmethod(flaky))
    monkeypatch.setattr(task_class, "tenant_cache", classmethod(lambda cls: _NoCache()))
    ran_in = []
    monkeypatch.setattr("integrations.relay.outbox_relay", lambda: ran_in.append(connection.schema_name) or 0)
    connection.set_schema_to_public()
    result = outbox_relay_task.apply(headers={"_schema_name": org_a.schema_name}, throw=False)
    assert result.successful()
    assert ran_in == [org_a.schema_name]
    assert lookups == [org_a.schema_name] * 3


def test_a_tenant_task_for_a_schema_that_does_not_exist_fails_loudly():
    connection.set_schema_to_public()
    with pytest.raises(MissingTenantError, match="no organization has the schema"):
        outbox_relay_task.apply(headers={"_schema_name": "no_such_schema"})


class _NoCache:
    def get(self, key, default=None):
        return default

    def set(self, key, value, expire_seconds=None):
        pass
