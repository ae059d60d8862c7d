from django.db.models import QuerySet

from tenants.choices import OrganizationStatus
from tenants.models import Organization


def organizations_of(*, user) -> QuerySet[Organization]:
    """The active organizations the user is an active member of."""
    return Organization.objects.filter(
        memberships__user_id=user.pk, memberships__is_active=True, status=OrganizationStatus.ACTIVE
    ).order_by("name")
