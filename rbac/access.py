"""Audited control-plane lookups: who belongs to which organization. Cached; invalidated on change."""

from __future__ import annotations

from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Membership

CACHE_TTL_SECONDS = 300
_NONE = "-"


def _key(user_id: int, organization_id: int) -> str:
    return f"rbac:membership:{user_id}:{organization_id}"


def membership_for(*, user, organization) -> Membership | None:
    """The user's active membership in the organization, or None. Costs no query once cached."""
    if user is None or not user.is_authenticated or organization is None:
        return None
    cache = caches["control"]
    key = _key(user.pk, organization.pk)
    cached = cache.get(key)
    if cached is None:
        cached = (
            Membership.objects.filter(user_id=user.pk, organization_id=organization.pk, is_active=True).first() or _NONE
        )
        cache.set(key, cached, CACHE_TTL_SECONDS)
    return None if cached == _NONE else cached


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
def _forget_membership(sender, instance: Membership, **kwargs) -> None:
    key = _key(instance.user_id, instance.organization_id)
    caches["control"].delete(key)
    # Again after commit: a reader between the save and the commit may have cached the old row.
    transaction.on_commit(lambda: caches["control"].delete(key))
