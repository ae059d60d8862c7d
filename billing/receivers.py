"""What billing does when the control plane below it says something happened (``tenants.signals``)."""

from __future__ import annotations

from .choices import SubscriptionStatus
from .dunning import detach_from_provider
from .models import Subscription
from .services import _move, _saved, _snapshot


def stop_charging_deleted_organization(sender, *, organization, **kwargs) -> None:
    """A deleted organization is not charged again: its subscription is canceled (audited), and so is the payment
    provider's, once the deletion commits (retried while the provider is unreachable). An operator who
    reactivates the organization within the purge delay starts a subscription for it again."""
    subscription = Subscription.objects.select_for_update().filter(organization_id=organization.pk).first()
    if subscription is None or subscription.status == SubscriptionStatus.CANCELED:
        return
    before = _snapshot(subscription)
    _move(subscription, SubscriptionStatus.CANCELED)
    detach_from_provider(subscription)
    _saved(subscription, before=before, actor=None, action="subscription.canceled_with_organization")
