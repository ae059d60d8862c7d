"""Memberships, roles and invitations. Every change is audited and takes effect on the next request.

A member who leaves, is removed or is deactivated loses their API keys in the organization (revoked, audited, by
identity on ``rbac.signals.membership_ended``): keys act with their creator's current grants, so a key left alive
would wake up if the person came back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from billing.features import Limit
from billing.services import enforce_limit
from config.decision_cache import invalidate_decisions
from config.locks import LockNamespace, xact_lock
from config.mail import normalize_email, send_email_task
from config.tasks import queue_after_commit

from . import audit
from .choices import InvitationStatus, SystemRole
from .errors import (
    AlreadyMember,
    InvitationInvalid,
    LastOwner,
    MemberNotFound,
    PermissionDenied,
    RoleInUse,
    SystemRoleReadOnly,
)
from .grants import grants_check_held, grants_validated
from .models import Invitation, Membership, Role
from .permissions import OWNERSHIP_TRANSFER
from .signals import membership_ended, membership_started

INVITATION_TTL = timedelta(days=7)


def system_role(key: str) -> Role:
    return Role.objects.get(organization=None, key=key)


def _membership_snapshot(membership: Membership) -> dict:
    return {"user": membership.user_id, "role": membership.role.key, "is_active": membership.is_active}


def _owner_count(organization, *, excluding: Membership | None = None) -> int:
    """Active owners of the organization; exact under :func:`_lock_members`, which every caller holds."""
    owners = Membership.objects.filter(
        organization=organization, is_active=True, role__organization=None, role__key=SystemRole.OWNER
    )
    if excluding is not None:
        owners = owners.exclude(pk=excluding.pk)
    return owners.count()


def _lock_members(organization_id: int) -> None:
    """Serialize the membership changes of one organization until commit.

    Two owners demoting each other at once would otherwise each see the other still an owner (or deadlock on
    each other's rows); under this lock the second one sees the first's committed change and is refused.
    """
    xact_lock(LockNamespace.MEMBERS, "members", organization_id)


def _guard_last_owner(membership: Membership, *, losing_ownership: bool) -> None:
    if losing_ownership and membership.is_owner and membership.is_active:
        if _owner_count(membership.organization, excluding=membership) == 0:
            raise LastOwner()


def _check_may_change_owner(membership: Membership, *, actor_grants: dict[str, str] | None) -> None:
    """An owner's membership (role, activation, removal) is changed only by someone who may transfer the ownership;
    others, an Admin included, get 403 ``permission_denied`` naming that permission. ``actor_grants`` None: the
    system, or the member acting on their own membership (leaving)."""
    if actor_grants is not None and membership.is_owner and OWNERSHIP_TRANSFER not in actor_grants:
        raise PermissionDenied(
            "Only someone who may transfer the ownership may change, deactivate or remove an owner.",
            extra={"permission": OWNERSHIP_TRANSFER},
        )


def _resolve_role(*, organization, role: Role | str) -> Role:
    if isinstance(role, Role):
        return role
    found = Role.objects.filter(key=role, organization=None).first()
    return found or Role.objects.get(key=role, organization=organization)


def _check_grantable(*, role: Role, actor_grants: dict[str, str] | None) -> None:
    """A member may only hand out a role whose grants they hold themselves."""
    grants_check_held(role.effective_grants(), held=actor_grants)


@transaction.atomic
def membership_create(*, user, organization, role: Role | str = SystemRole.SALES_REP, actor=None) -> Membership:
    role = _resolve_role(organization=organization, role=role)
    existing = Membership.objects.select_for_update().filter(user=user, organization=organization).first()
    if existing and existing.is_active:
        raise AlreadyMember()
    enforce_limit(organization=organization, limit=Limit.SEATS)
    # Keys left from an earlier membership (revoked when it ended, except ones that predate that rule) stay dead.
    membership_started.send(
        sender=Membership, organization=organization, user_id=user.pk, actor=actor, action="membership.created"
    )
    if existing:
        existing.role, existing.is_active, existing.deactivated_at = role, True, None
        existing.save(update_fields=["role", "is_active", "deactivated_at"])
        membership = existing
    else:
        membership = Membership.objects.create(user=user, organization=organization, role=role)
    audit.record(
        organization=organization,
        actor=actor,
        action="membership.created",
        target_type="membership",
        target_id=membership.pk,
        after=_membership_snapshot(membership),
    )
    invalidate_decisions(organization_id=organization.pk)
    return membership


@transaction.atomic
def membership_change_role(*, membership: Membership, role: Role, actor, actor_grants=None) -> Membership:
    _lock_members(membership.organization_id)
    membership = (
        Membership.objects.select_for_update(of=("self",)).select_related("role", "organization").get(pk=membership.pk)
    )
    _check_may_change_owner(membership, actor_grants=actor_grants)
    _check_grantable(role=role, actor_grants=actor_grants)
    before = _membership_snapshot(membership)
    _guard_last_owner(membership, losing_ownership=not (role.is_system and role.key == SystemRole.OWNER))
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        organization=membership.organization,
        actor=actor,
        action="membership.role_changed",
        target_type="membership",
        target_id=membership.pk,
        before=before,
        after=_membership_snapshot(membership),
    )
    invalidate_decisions(organization_id=membership.organization_id)
    return membership


@transaction.atomic
def membership_set_active(*, membership: Membership, active: bool, actor, actor_grants=None) -> Membership:
    _lock_members(membership.organization_id)
    membership = (
        Membership.objects.select_for_update(of=("self",)).select_related("role", "organization").get(pk=membership.pk)
    )
    _check_may_change_owner(membership, actor_grants=actor_grants)
    if membership.is_active == active:
        return membership
    if active:
        enforce_limit(organization=membership.organization, limit=Limit.SEATS)
    before = _membership_snapshot(membership)
    _guard_last_owner(membership, losing_ownership=not active)
    membership.is_active = active
    membership.deactivated_at = None if active else timezone.now()
    membership.save(update_fields=["is_active", "deactivated_at"])
    action = "membership.activated" if active else "membership.deactivated"
    audit.record(
        organization=membership.organization,
        actor=actor,
        action=action,
        target_type="membership",
        target_id=membership.pk,
        before=before,
        after=_membership_snapshot(membership),
    )
    if not active:  # reactivation does not bring them back
        membership_ended.send(
            sender=Membership,
            organization=membership.organization,
            user_id=membership.user_id,
            actor=actor,
            action=action,
        )
    invalidate_decisions(organization_id=membership.organization_id)
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor, actor_grants=None, action: str = "membership.removed") -> None:
    _lock_members(membership.organization_id)
    membership = (
        Membership.objects.select_for_update(of=("self",)).select_related("role", "organization").get(pk=membership.pk)
    )
    _check_may_change_owner(membership, actor_grants=actor_grants)
    before = _membership_snapshot(membership)
    _guard_last_owner(membership, losing_ownership=True)
    organization, pk = membership.organization, membership.pk
    membership.delete()
    audit.record(
        organization=organization, actor=actor, action=action, target_type="membership", target_id=pk, before=before
    )
    membership_ended.send(
        sender=Membership, organization=organization, user_id=membership.user_id, actor=actor, action=action
    )
    invalidate_decisions(organization_id=organization.pk)


def membership_leave(*, membership: Membership, actor) -> None:
    membership_remove(membership=membership, actor=actor, action="membership.left")


@transaction.atomic
def ownership_transfer(*, organization, from_membership: Membership, to_membership: Membership, actor) -> Membership:
    """Make ``to_membership`` an owner and the current owner an admin, in one step."""
    _lock_members(organization.pk)
    if to_membership.pk == from_membership.pk:
        from config.api.errors import ValidationFailed

        raise ValidationFailed("Choose another member to hand the ownership to.", field="to_member")
    to_membership = Membership.objects.select_for_update(of=("self",)).select_related("role").get(pk=to_membership.pk)
    if not to_membership.is_active or to_membership.organization_id != organization.pk:
        raise MemberNotFound("The new owner must be an active member of the organization.")
    membership_change_role(membership=to_membership, role=system_role(SystemRole.OWNER), actor=actor)
    return membership_change_role(membership=from_membership, role=system_role(SystemRole.ADMIN), actor=actor)


# --- Custom roles ---


def _role_snapshot(role: Role) -> dict:
    return {"key": role.key, "name": role.name, "grants": role.grants}


@transaction.atomic
def role_create(*, organization, name: str, description: str = "", grants: dict[str, str], actor, actor_grants=None):
    from django.utils.text import slugify

    role = Role(
        organization=organization,
        name=name.strip(),
        description=description,
        grants=grants_validated(grants, field="grants"),
    )
    role.key = slugify(name)[:60] or "role"
    _check_grantable(role=role, actor_grants=actor_grants)
    try:
        with transaction.atomic():
            role.save()
    except IntegrityError as exc:
        from config.api.errors import Conflict

        raise Conflict("A role with this name already exists.") from exc
    audit.record(
        organization=organization,
        actor=actor,
        action="role.created",
        target_type="role",
        target_id=role.pk,
        after=_role_snapshot(role),
    )
    return role


@transaction.atomic
def role_update(*, role: Role, actor, actor_grants=None, **changes) -> Role:
    if role.is_system:
        raise SystemRoleReadOnly()
    role = Role.objects.select_for_update().get(pk=role.pk)
    before = _role_snapshot(role)
    if "grants" in changes:
        role.grants = grants_validated(changes["grants"], field="grants")
        _check_grantable(role=role, actor_grants=actor_grants)
    for field in ("name", "description"):
        if field in changes:
            setattr(role, field, changes[field].strip() if field == "name" else changes[field])
    try:
        with transaction.atomic():
            role.save()
    except IntegrityError as exc:
        from config.api.errors import Conflict

        raise Conflict("A role with this name already exists.") from exc
    audit.record(
        organization=role.organization,
        actor=actor,
        action="role.updated",
        target_type="role",
        target_id=role.pk,
        before=before,
        after=_role_snapshot(role),
    )
    invalidate_decisions(organization_id=role.organization_id)
    return role


@transaction.atomic
def role_delete(*, role: Role, actor) -> None:
    if role.is_system:
        raise SystemRoleReadOnly()
    # Locking the row first makes a concurrent assignment (which key-share locks it) finish before the check.
    role = Role.objects.select_for_update().get(pk=role.pk)
    if role.memberships.exists() or role.invitations.filter(status=InvitationStatus.PENDING).exists():
        raise RoleInUse()
    organization, pk, before = role.organization, role.pk, _role_snapshot(role)
    try:
        with transaction.atomic():
            role.delete()
    except ProtectedError as exc:
        raise RoleInUse() from exc
    audit.record(
        organization=organization, actor=actor, action="role.deleted", target_type="role", target_id=pk, before=before
    )
    invalidate_decisions(organization_id=role.organization_id)


# --- Invitations ---


def _token_hash(token: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), token.encode(), hashlib.sha256).hexdigest()


def _send_invitation(invitation: Invitation, token: str) -> None:
    accept_url = f"{settings.FRONTEND_URL.rstrip('/')}/invitations/accept?token={token}"
    subject = f"You are invited to {invitation.organization.name}"
    body = (
        f"You have been invited to join {invitation.organization.name} as {invitation.role.name}.\n\n"
        f"Accept the invitation: {accept_url}\n\nThe invitation expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
    )
    queue_after_commit(send_email_task, to=[invitation.email], subject=subject, body=body)


@transaction.atomic
def invitation_create(*, organization, email: str, role: Role, actor, actor_grants=None) -> tuple[Invitation, str]:
    """Invite someone by e-mail. Returns the invitation and its one-time token (sent by e-mail only)."""
    email = normalize_email(email)
    _check_grantable(role=role, actor_grants=actor_grants)
    if Membership.objects.filter(organization=organization, user__email=email, is_active=True).exists():
        raise AlreadyMember(field="email")
    Invitation.objects.filter(
        organization=organization, email=email, status=InvitationStatus.PENDING, expires_at__lte=timezone.now()
    ).update(status=InvitationStatus.EXPIRED)
    if Invitation.objects.filter(organization=organization, email=email, status=InvitationStatus.PENDING).exists():
        from config.api.errors import Conflict

        raise Conflict("An invitation for this e-mail is already pending; resend it instead.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=actor if getattr(actor, "email", None) else None,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    audit.record(
        organization=organization,
        actor=actor,
        action="invitation.created",
        target_type="invitation",
        target_id=invitation.pk,
        after={"email": email, "role": role.key},
    )
    _send_invitation(invitation, token)
    return invitation, token


@transaction.atomic
def invitation_resend(*, invitation: Invitation, actor) -> tuple[Invitation, str]:
    """A new token and a new expiry; the old link stops working."""
    invitation = (
        Invitation.objects.select_for_update(of=("self",)).select_related("organization", "role").get(pk=invitation.pk)
    )
    if invitation.status != InvitationStatus.PENDING:
        raise InvitationInvalid()
    token = secrets.token_urlsafe(32)
    invitation.token_hash = _token_hash(token)
    invitation.expires_at = timezone.now() + INVITATION_TTL
    before = {"email": invitation.email, "expires_at": invitation.expires_at.isoformat()}
    invitation.send_count += 1
    invitation.save(update_fields=["token_hash", "expires_at", "send_count"])
    audit.record(
        organization=invitation.organization,
        actor=actor,
        action="invitation.resent",
        target_type="invitation",
        target_id=invitation.pk,
        before=before,
        after={"email": invitation.email, "expires_at": invitation.expires_at.isoformat()},
    )
    _send_invitation(invitation, token)
    return invitation, token


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != InvitationStatus.PENDING:
        raise InvitationInvalid()
    invitation.status = InvitationStatus.REVOKED
    invitation.save(update_fields=["status"])
    audit.record(
        organization=invitation.organization,
        actor=actor,
        action="invitation.revoked",
        target_type="invitation",
        target_id=invitation.pk,
        before={"email": invitation.email, "status": InvitationStatus.PENDING},
        after={"email": invitation.email, "status": InvitationStatus.REVOKED},
    )
    return invitation


def invitation_by_token(*, token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("organization", "role", "invited_by")
        .filter(token_hash=_token_hash(token or ""))
        .first()
    )


@transaction.atomic
def invitation_accept(*, token: str, user) -> Membership:
    """Attach ``user`` (new or existing, already authenticated for that e-mail) to the organization."""
    found = invitation_by_token(token=token)
    if found is None:
        raise InvitationInvalid()
    invitation = (
        Invitation.objects.select_for_update(of=("self",)).select_related("organization", "role").get(pk=found.pk)
    )
    if invitation.status != InvitationStatus.PENDING or invitation.expires_at <= timezone.now():
        raise InvitationInvalid()
    if normalize_email(user.email) != invitation.email:
        raise InvitationInvalid("This invitation was sent to another e-mail address.")
    membership = membership_create(user=user, organization=invitation.organization, role=invitation.role, actor=user)
    invitation.status = InvitationStatus.ACCEPTED
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["status", "accepted_at", "accepted_by"])
    audit.record(
        organization=invitation.organization,
        actor=user,
        action="invitation.accepted",
        target_type="invitation",
        target_id=invitation.pk,
        before={"email": invitation.email, "status": InvitationStatus.PENDING},
        after={"email": invitation.email, "status": InvitationStatus.ACCEPTED, "membership": membership.pk},
    )
    return membership
