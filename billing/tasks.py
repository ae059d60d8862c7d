from celery import shared_task

from config.tasks import PublicTask

from . import services


@shared_task(name="billing.expire_trials", base=PublicTask, periodic=True)
def expire_trials_task() -> int:
    return services.subscription_expire_trials()
