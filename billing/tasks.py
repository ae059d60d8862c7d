from config.celery import PublicTask, app

from . import services


@app.task(name="billing.expire_trials", base=PublicTask, periodic=True)
def expire_trials_task() -> int:
    return services.subscription_expire_trials()
