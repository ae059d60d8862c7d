from celery import shared_task

from config.tasks import PublicTask

from . import dunning, metering, provider, services
from .errors import PaymentProviderUnavailable


@shared_task(name="billing.expire_trials", base=PublicTask, periodic=True)
def expire_trials_task() -> int:
    return services.subscription_expire_trials()


@shared_task(name="billing.dunning", base=PublicTask, periodic=True)
def dunning_task() -> dict[str, int]:
    """Past-due subscriptions past their grace go to Free; downgrades due at the period's end apply."""
    return dunning.subscription_dunning()


@shared_task(name="billing.report_usage", base=PublicTask, periodic=True)
def report_usage_task() -> int:
    """Metered usage not reported yet goes to the payment provider (each range once)."""
    return metering.usage_report()


@shared_task(name="billing.cancel_provider_subscription", base=PublicTask, autoretry_for=(PaymentProviderUnavailable,))
def cancel_provider_subscription_task(*, subscription_id: str) -> None:
    """Stop the provider charging for a subscription that ended here (dunning, a deleted organization); retried
    while the provider is unreachable."""
    provider.subscription_cancel(subscription_id=subscription_id)
