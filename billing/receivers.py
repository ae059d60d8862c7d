"""What billing does when the control plane below it says something happened (``tenants.signals``)."""

from __future__ import annotations

from config.tasks import queue_after_commit

from .choices import SubscriptionStatus
from .models import Subscription
from .services import _move, _saved, _snapshot


def stop_charging_deleted_organization(sender, *, organization, **kwargs) -> None:
    """A deleted organization is not charged again: its subscription is canceled (audited), and so is the payment
    provider's, once the deletion commits (retried while the provider is unreachable). An operator who
    reactivates the organization within the purge delay starts a subscription for it again."""
    from .tasks import cancel_provider_subscription_task

    subscription = Subscription.objects.select_for_update().filter(organization_id=organization.pk).first()
    if subscription is None or subscription.status == SubscriptionStatus.CANCELED:
        return
    before, canceled = _snapshot(subscription), subscription.provider_subscription_id
    _move(subscription, SubscriptionStatus.CANCELED)
    subscription.provider_subscription_id, subscription.cancel_at_period_end = "", False
    subscription.scheduled_plan, subscription.scheduled_interval = None, ""
    _saved(subscription, before=before, actor=None, action="subscription.canceled_with_organization")
    if canceled:
        queue_after_commit(cancel_provider_subscription_task, subscription_id=canceled)
