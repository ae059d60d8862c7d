from config.celery import PublicTask, app

from . import services


@app.task(name="tenants.refill_standby_pool", base=PublicTask, acks_late=True, periodic=True)
def refill_standby_pool_task() -> int:
    # Concurrent refills may overshoot the pool by a schema or two; that costs a little disk, never correctness.
    return services.standby_pool_refill()


@app.task(name="tenants.purge_deleted_organizations", base=PublicTask, acks_late=True, periodic=True)
def purge_deleted_organizations_task() -> list[str]:
    return services.purge_due_organizations()
