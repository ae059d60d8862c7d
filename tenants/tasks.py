from celery import Task, shared_task

from config.breaker import Unavailable
from config.tasks import SCHEMA_HEADER, PublicTask

from . import services
from .selectors import active_organizations


def queue_for_each_organization(task: Task) -> int:
    """Beat's fan-out: queue the tenant ``task`` once in every active organization's schema; returns how many were
    queued. A broker that stops answering ends the round (the next beat tick starts it again)."""
    count = 0
    for schema_name in active_organizations().values_list("schema_name", flat=True).iterator():
        try:
            task.apply_async(headers={SCHEMA_HEADER: schema_name})
        except Unavailable:
            break
        count += 1
    return count


@shared_task(name="tenants.refill_standby_pool", base=PublicTask, periodic=True)
def refill_standby_pool_task() -> int:
    # Concurrent refills may overshoot the pool by a schema or two; that costs a little disk, never correctness.
    return services.standby_pool_refill()


@shared_task(name="tenants.purge_deleted_organizations", base=PublicTask, periodic=True)
def purge_deleted_organizations_task() -> list[str]:
    return services.purge_due_organizations()
