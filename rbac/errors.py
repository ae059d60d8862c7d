from rest_framework import status

from config.api.errors import Conflict, DomainError, NotFound, ValidationFailed


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = status.HTTP_403_FORBIDDEN
    title = "You do not have permission to perform this action."


class OutOfReach(ValidationFailed):
    """A write would put a record outside the actor's scope (``rbac.actor.keep_in_reach``)."""

    code = "out_of_scope"
    title = "The change would move the record outside what you may edit."


class LastOwner(Conflict):
    code = "last_owner"
    title = "An organization must keep at least one active owner."


class RoleInUse(Conflict):
    code = "role_in_use"
    title = "The role is assigned to members or pending invitations."


class SystemRoleReadOnly(Conflict):
    code = "system_role_read_only"
    title = "Built-in roles cannot be changed."


class GrantExceedsOwn(DomainError):
    code = "grant_exceeds_own"
    status = status.HTTP_403_FORBIDDEN
    title = "You cannot grant permissions you do not hold."


class AlreadyMember(Conflict):
    code = "already_member"
    title = "This person is already a member of the organization."


class InvitationInvalid(ValidationFailed):
    code = "invitation_invalid"
    title = "The invitation is invalid, expired, revoked or already used."


class InvitationNotFound(NotFound):
    code = "not_found"


class MemberNotFound(NotFound):
    code = "not_found"


class UnknownPermission(ValidationFailed):
    code = "unknown_permission"
    title = "Unknown permission code."


class InvitationUnknown(NotFound):
    """No pending invitation has this token: never sent, revoked, replaced by a resend, or its organization is gone.
    One answer for all of them, to the byte."""

    code = "invitation_not_found"
    title = "No invitation has this token."


class InvitationGone(DomainError):
    """The invitation existed for this token but can no longer be accepted; the code says why."""

    code = "invitation_gone"
    status = status.HTTP_410_GONE
    title = "The invitation can no longer be accepted."


class InvitationExpired(InvitationGone):
    code = "invitation_expired"
    title = "The invitation has expired; ask for a new one."


class InvitationUsed(InvitationGone):
    code = "invitation_accepted"
    title = "The invitation has been accepted already; sign in instead."
