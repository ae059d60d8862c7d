"""Celery tasks of analytics. ``analytics.snapshot_all`` is run by beat (``analytics-snapshots`` in
``CELERY_BEAT_SCHEDULE``, hourly: each organization's day ends at its own midnight) and queues one
``analytics.snapshot`` per active organization, which snapshots whatever complete local days it lacks."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

from config.celery import PublicTask, app

from . import services

TRANSIENT = (OperationalError, InterfaceError)


@app.task(name="analytics.snapshot", autoretry_for=TRANSIENT, soft_time_limit=1800, time_limit=1900)
def snapshot_task() -> dict:
    result = services.snapshot_take()
    return {"days": len(result.days), "rows": result.rows, "anomalies": result.anomalies}


@app.task(name="analytics.snapshot_all", base=PublicTask, periodic=True)
def snapshot_all_task() -> int:
    """Beat: queue :func:`snapshot_task` for every active organization."""
    from tenants.selectors import active_organizations

    count = 0
    for schema_name in active_organizations().values_list("schema_name", flat=True).iterator():
        snapshot_task.apply_async(headers={"_schema_name": schema_name})
        count += 1
    return count
