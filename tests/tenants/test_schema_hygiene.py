"""Data-plane tables live only in tenant schemas; tenant work never runs in public."""

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection

from config.celery import MissingTenantError
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
