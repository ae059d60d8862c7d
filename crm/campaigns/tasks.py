"""Celery tasks of campaigns. Tenant tasks run in the schema of the organization that queued them; the beat tick
(``campaigns-tick`` in ``CELERY_BEAT_SCHEDULE``, every ``CAMPAIGN_TICK_INTERVAL_SECONDS``) is a control-plane
task that fans out one tenant tick per active organization."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from config.breaker import Unavailable
from config.tasks import PublicTask
from tenants.tasks import queue_for_each_organization

from . import sending, services

TRANSIENT = (OperationalError, InterfaceError)
TENANT_CACHE_SECONDS = 60


@shared_task(name="campaigns.start", autoretry_for=TRANSIENT, tenant_cache_seconds=TENANT_CACHE_SECONDS)
def campaign_start_task(campaign_id: int) -> bool:
    return services.campaign_start(campaign_id=campaign_id) is not None


@shared_task(
    name="campaigns.run",
    autoretry_for=TRANSIENT,
    soft_time_limit=900,
    time_limit=960,
    tenant_cache_seconds=TENANT_CACHE_SECONDS,
)
def campaign_run_task(campaign_id: int) -> str:
    """Send for one slice, then queue the runner again while messages are due now; waits (a closed window, a
    provider outage, the hour's allowance) are picked up by the tick."""
    outcome = sending.run(campaign_id=campaign_id)
    if outcome.again_in == 0 and not campaign_run_task.app.conf.task_always_eager:
        try:
            campaign_run_task.apply_async((campaign_id,))
        except Unavailable:
            pass  # the tick wakes the campaign
    return outcome.state


@shared_task(name="campaigns.tick_tenant", autoretry_for=TRANSIENT, tenant_cache_seconds=TENANT_CACHE_SECONDS)
def campaign_tick_task() -> dict[str, int]:
    return sending.tick()


@shared_task(name="campaigns.tick", base=PublicTask, periodic=True)
def campaign_tick_all_task() -> int:
    """Beat: queue :func:`campaign_tick_task` for every active organization."""
    return queue_for_each_organization(campaign_tick_task)
