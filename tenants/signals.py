"""What tenants tells the apps above it, and the cache invalidation of tenant resolution (any change to an
organization or domain drops its cached entries)."""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import Signal, receiver

from .models import Domain, Organization
from .selectors import forget_organization

#: An organization was provisioned for its customer (created, or claimed from the standby pool): sent with
#: ``organization`` inside the creating transaction, so what receivers set up in its schema commits or rolls back
#: with it. The data plane sets up what every organization starts with (pipelines: the default pipeline).
organization_provisioned = Signal()

#: An organization was deleted (suspended, its schema purged later): sent with ``organization`` inside the
#: deleting transaction. Billing stops the payment provider charging it.
organization_deleted = Signal()


@receiver(pre_save, sender=Organization)
def _remember_previous_slug(sender, instance: Organization, **kwargs) -> None:
    if instance.pk:
        instance._previous_slug = Organization.objects.filter(pk=instance.pk).values_list("slug", flat=True).first()


@receiver(post_save, sender=Organization)
@receiver(post_delete, sender=Organization)
def _forget_organization(sender, instance: Organization, **kwargs) -> None:
    hosts = list(Domain.objects.filter(tenant_id=instance.pk).values_list("domain", flat=True)) if instance.pk else []
    forget_organization(
        slugs=[instance.slug, getattr(instance, "_previous_slug", None)], hosts=hosts, ids=(instance.pk,)
    )


@receiver(pre_save, sender=Domain)
def _remember_previous_domain(sender, instance: Domain, **kwargs) -> None:
    if instance.pk:
        instance._previous_domain = Domain.objects.filter(pk=instance.pk).values_list("domain", flat=True).first()


@receiver(post_save, sender=Domain)
@receiver(post_delete, sender=Domain)
def _forget_domain(sender, instance: Domain, **kwargs) -> None:
    forget_organization(slugs=[], hosts=[instance.domain, getattr(instance, "_previous_domain", None)])
