from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants.choices import OrganizationStatus
from tenants.models import Organization

from .choices import InvitationStatus
from .models import Invitation, Membership, Role


def organizations_of(*, user) -> QuerySet[Organization]:
    """The active organizations the user is an active member of."""
    return Organization.objects.filter(
        memberships__user_id=user.pk, memberships__is_active=True, status=OrganizationStatus.ACTIVE
    ).order_by("name")


def roles_for(*, organization) -> QuerySet[Role]:
    """System roles and the organization's custom roles."""
    return Role.objects.filter(Q(organization=None) | Q(organization=organization))


def members_of(*, organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user", "role")


def invitations_with_status(queryset: QuerySet[Invitation], status: str) -> QuerySet[Invitation]:
    """Filter by the status a reader sees (:attr:`Invitation.effective_status`): expiry counts, swept or not."""
    now = timezone.now()
    pending = Q(status=InvitationStatus.PENDING)
    if status == InvitationStatus.PENDING:
        return queryset.filter(pending, expires_at__gt=now)
    if status == InvitationStatus.EXPIRED:
        return queryset.filter(Q(status=InvitationStatus.EXPIRED) | (pending & Q(expires_at__lte=now)))
    return queryset.filter(status=status)
