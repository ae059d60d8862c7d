from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants.choices import OrganizationStatus

from .choices import InvitationStatus
from .errors import InvitationExpired, InvitationUnknown, InvitationUsed
from .models import Invitation, Membership, Role


def memberships_of(*, user) -> QuerySet[Membership]:
    """The user's active memberships of active organizations, with the organization and the role, by name."""
    return (
        Membership.objects.filter(user_id=user.pk, is_active=True, organization__status=OrganizationStatus.ACTIVE)
        .select_related("organization", "role")
        .order_by("organization__name", "organization_id")
    )


def roles_for(*, organization) -> QuerySet[Role]:
    """System roles and the organization's custom roles."""
    return Role.objects.filter(Q(organization=None) | Q(organization=organization))


def members_of(*, organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user", "role")


def active_member_users(organization_id: int) -> QuerySet:
    """The users who are active members of the organization (what a request body's person reference may name)."""
    from django.contrib.auth import get_user_model

    member_ids = Membership.objects.filter(organization_id=organization_id, is_active=True).values("user_id")
    return get_user_model().objects.filter(pk__in=member_ids)


def invitations_with_status(queryset: QuerySet[Invitation], status: str) -> QuerySet[Invitation]:
    """Filter by the status a reader sees (:attr:`Invitation.effective_status`): expiry counts, swept or not."""
    now = timezone.now()
    pending = Q(status=InvitationStatus.PENDING)
    if status == InvitationStatus.PENDING:
        return queryset.filter(pending, expires_at__gt=now)
    if status == InvitationStatus.EXPIRED:
        return queryset.filter(Q(status=InvitationStatus.EXPIRED) | (pending & Q(expires_at__lte=now)))
    return queryset.filter(status=status)


def invitation_for_invitee(*, token: str) -> Invitation:
    """The pending invitation ``token`` names, with its organization, role and inviter, for the invitee to look at
    before accepting. Unknown, revoked or replaced tokens, and invitations to an organization that is no longer
    active: :class:`InvitationUnknown` (404, one answer for all); expired: :class:`InvitationExpired` (410);
    accepted: :class:`InvitationUsed` (410)."""
    from .services import invitation_by_token  # the token's hash is the services' (they issue tokens)

    invitation = invitation_by_token(token=token)
    if (
        invitation is None
        or invitation.status == InvitationStatus.REVOKED
        or invitation.organization.status != OrganizationStatus.ACTIVE
    ):
        raise InvitationUnknown()
    status = invitation.effective_status
    if status == InvitationStatus.EXPIRED:
        raise InvitationExpired()
    if status == InvitationStatus.ACCEPTED:
        raise InvitationUsed()
    return invitation
