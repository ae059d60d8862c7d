"""Celery tasks of analytics. ``analytics.snapshot_all`` is run by beat (``analytics-snapshots`` in
``CELERY_BEAT_SCHEDULE``, hourly: each organization's day ends at its own midnight) and queues one
``analytics.snapshot`` per active organization, which snapshots whatever complete local days it lacks."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from config.tasks import PublicTask
from tenants.tasks import queue_for_each_organization

from . import services

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(name="analytics.snapshot", autoretry_for=TRANSIENT, soft_time_limit=1800, time_limit=1900)
def snapshot_task() -> dict:
    result = services.snapshot_take()
    return {"days": len(result.days), "rows": result.rows, "anomalies": result.anomalies}


@shared_task(name="analytics.snapshot_all", base=PublicTask, periodic=True)
def snapshot_all_task() -> int:
    """Beat: queue :func:`snapshot_task` for every active organization."""
    return queue_for_each_organization(snapshot_task)
