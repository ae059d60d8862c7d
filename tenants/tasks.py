from celery import shared_task

from config.tasks import PublicTask

from . import services


@shared_task(name="tenants.refill_standby_pool", base=PublicTask, periodic=True)
def refill_standby_pool_task() -> int:
    # Concurrent refills may overshoot the pool by a schema or two; that costs a little disk, never correctness.
    return services.standby_pool_refill()


@shared_task(name="tenants.purge_deleted_organizations", base=PublicTask, periodic=True)
def purge_deleted_organizations_task() -> list[str]:
    return services.purge_due_organizations()
