"""Accounts and sessions: sign-up, sign-in (password or Google), joining by invitation, tokens, password change
and reset.

identity is the top of the control plane: signing up creates an organization (tenants), its subscription
(billing) and the owner's membership (rbac); joining by invitation signs the person up or in and accepts it
(rbac). What a new organization gets in its schema (a default pipeline) is the data plane's reaction to
``tenants.signals.organization_provisioned``, not an import.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.models import update_last_login
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import salted_hmac
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from billing.services import subscription_start
from config.api.errors import ValidationFailed
from config.mail import normalize_email, send_email_task
from config.tasks import queue_after_commit
from rbac.choices import SystemRole
from rbac.errors import InvitationInvalid
from rbac.services import invitation_accept, invitation_by_token, membership_create
from tenants.models import Organization
from tenants.services import organization_create

from . import google, lockout
from .errors import EmailTaken, InvalidCode, InvalidCredentials, WeakPassword, WrongPassword
from .models import OneTimeCode, User

logger = logging.getLogger(__name__)


def _validate_password(password: str, user: User | None = None, *, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise WeakPassword(" ".join(exc.messages), field=field) from exc


@transaction.atomic
def user_create(*, email: str, password: str | None, first_name: str = "", last_name: str = "") -> User:
    email = normalize_email(email)
    user = User(email=email, first_name=first_name.strip(), last_name=last_name.strip())
    if password is not None:
        _validate_password(password, user)
    user.set_password(password)
    if User.objects.filter(email=email).exists():
        raise EmailTaken(field="email")
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent sign-up with the same e-mail
        raise EmailTaken(field="email") from exc
    return user


@transaction.atomic
def user_register(
    *, email: str, password: str | None, first_name: str, last_name: str, organization_name: str
) -> tuple[User, Organization]:
    """Create a user and their organization, with the user as its owner. All or nothing."""
    user = user_create(email=email, password=password, first_name=first_name, last_name=last_name)
    organization = organization_create(name=organization_name)
    membership_create(user=user, organization=organization, role=SystemRole.OWNER)
    subscription_start(organization=organization)
    return user, organization


@transaction.atomic
def user_join_by_invitation(
    *, token: str, password: str | None, first_name: str = "", last_name: str = "", signed_in=None, ip: str
) -> User:
    """Accept an invitation as the invited person: a new account (``password`` chosen here), or an existing one
    that proves itself, signed in as that account (``signed_in``) or with its password (counted by the sign-in
    lockout like any password attempt). Returns the person, now a member. All or nothing."""
    invitation = invitation_by_token(token=token)
    if invitation is None:
        raise InvitationInvalid()
    user = User.objects.filter(email=normalize_email(invitation.email)).first()
    if user is None:
        if not password:
            raise ValidationFailed("Choose a password.", field="password", code="required")
        user = user_create(email=invitation.email, password=password, first_name=first_name, last_name=last_name)
    elif not (signed_in is not None and signed_in.is_authenticated and signed_in.pk == user.pk):
        proof_missing = InvitationInvalid("Sign in as the invited account, or give its password.")
        if not password:
            raise proof_missing
        try:
            user_sign_in(email=user.email, password=password, ip=ip)
        except InvalidCredentials as exc:
            raise proof_missing from exc
    invitation_accept(token=token, user=user)
    return user


def tokens_for(*, user: User) -> dict[str, str]:
    """A new session: a refresh token (rotated on use) and a short-lived access token."""
    refresh = RefreshToken.for_user(user)
    return {"refresh": str(refresh), "access": str(refresh.access_token)}


def user_sign_in(*, email: str, password: str, ip: str) -> User:
    """The user for these credentials. Raises :class:`InvalidCredentials`, or :class:`AccountLocked` after too
    many failures for this e-mail or from this IP (identity/lockout.py)."""
    email = normalize_email(email)
    lockout.check(email=email, ip=ip)
    user = authenticate(email=email, password=password)  # hashes once for unknown e-mails too (timing)
    if user is None:
        lockout.record_failure(email=email, ip=ip)
        raise InvalidCredentials()
    lockout.reset(email=email)
    update_last_login(User, user)
    return user


def user_sign_in_with_google(*, id_token: str) -> tuple[User, bool]:
    """The user a verified Google ID token names, and whether it was created. An unknown e-mail signs up as
    the register endpoint does: a user without a password, owner of a new organization named after them."""
    person = google.verify_id_token(id_token)
    created = False
    user = User.objects.filter(email=person.email).first()
    if user is None:
        try:
            user, _ = user_register(
                email=person.email,
                password=None,
                first_name=person.first_name,
                last_name=person.last_name,
                organization_name=f"{person.first_name or person.email.split('@')[0]}'s organization",
            )
            created = True
        except EmailTaken:  # a concurrent first sign-in with the same account
            user = User.objects.get(email=person.email)
    if not user.is_active:
        raise InvalidCredentials("This account is disabled.")
    lockout.reset(email=user.email)
    update_last_login(User, user)
    return user, created


def user_sessions_revoke(*, user: User) -> int:
    """Blacklist every refresh token of the user that is still valid; returns how many. Access tokens die with
    the password change that usually comes with this (``CHECK_REVOKE_TOKEN``) or when they expire."""
    outstanding = OutstandingToken.objects.filter(
        user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    ).only("pk")
    revoked = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    return len(revoked)


def _password_set(*, user: User, password: str) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    user_sessions_revoke(user=user)


def password_change(*, user: User, current_password: str, new_password: str, ip: str) -> User:
    """Change the password of a signed-in user who proves the current one; every other session ends. Wrong
    current passwords count towards the sign-in lockout, so a stolen access token cannot guess it."""
    lockout.check(email=user.email, ip=ip)
    if not user.check_password(current_password):
        lockout.record_failure(email=user.email, ip=ip)
        raise WrongPassword(field="current_password")
    _validate_password(new_password, user, field="new_password")
    with transaction.atomic():
        _password_set(user=user, password=new_password)
    return user


# --- Password reset by one-time code -----------------------------------------------------------------------


def _code_hash(*, user_id: int, purpose: str, code: str) -> str:
    """Keyed with SECRET_KEY and bound to the user and purpose: a leaked table does not give codes away."""
    return salted_hmac("identity.OneTimeCode", f"{user_id}:{purpose}:{code}", algorithm="sha256").hexdigest()


def _new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def password_reset_request(*, email: str) -> None:
    """E-mail a password-reset code when an active account has this address; says nothing either way.

    A new code replaces the previous ones. At most ``OTP_MAX_PER_HOUR`` codes go to one account per hour, so
    the per-code attempt limit cannot be renewed endlessly."""
    purpose = OneTimeCode.Purpose.PASSWORD_RESET
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email=normalize_email(email), is_active=True).first()
        if user is None:
            return
        now = timezone.now()
        recent = OneTimeCode.objects.filter(user=user, purpose=purpose, created_at__gte=now - timedelta(hours=1))
        if recent.count() >= settings.OTP_MAX_PER_HOUR:
            logger.info("password reset for user %s refused: hourly code limit reached", user.pk)
            return
        code = _new_code()
        OneTimeCode.objects.create(
            user=user,
            purpose=purpose,
            code_hash=_code_hash(user_id=user.pk, purpose=purpose, code=code),
            expires_at=now + timedelta(seconds=settings.OTP_TTL_SECONDS),
        )
        _send_reset_code(email=user.email, code=code)


def _send_reset_code(*, email: str, code: str) -> None:
    minutes = max(1, settings.OTP_TTL_SECONDS // 60)
    subject = "Your password reset code"
    body = (
        f"Your password reset code is {code}\n\n"
        f"It expires in {minutes} minutes and works once. If you did not ask to reset your password, ignore this "
        "e-mail: your password stays as it is."
    )
    queue_after_commit(send_email_task, to=[email], subject=subject, body=body)


def password_reset_confirm(*, email: str, code: str, new_password: str) -> User:
    """Set a new password with the latest code e-mailed to the account; every session of the user ends.

    Only the newest code counts; it works once, until it expires, and for ``OTP_MAX_ATTEMPTS`` tries. A wrong,
    expired, used or superseded code and an unknown e-mail all raise the same :class:`InvalidCode`."""
    purpose = OneTimeCode.Purpose.PASSWORD_RESET
    code = "".join(ch for ch in code if ch.isdigit())
    accepted: User | None = None
    with transaction.atomic():
        user = User.objects.filter(email=normalize_email(email), is_active=True).first()
        latest = None
        if user is not None:
            latest = (
                OneTimeCode.objects.select_for_update()
                .filter(user=user, purpose=purpose)
                .order_by("-created_at", "-pk")
                .first()
            )
        now = timezone.now()
        candidate = _code_hash(user_id=user.pk if user else 0, purpose=purpose, code=code)  # hashed either way
        usable = (
            user is not None
            and latest is not None
            and latest.used_at is None
            and latest.expires_at > now
            and latest.attempts < settings.OTP_MAX_ATTEMPTS
        )
        if usable and user is not None and latest is not None:
            if hmac.compare_digest(candidate, latest.code_hash):
                _validate_password(new_password, user, field="new_password")  # a weak one keeps the code usable
                latest.used_at = now
                latest.save(update_fields=["used_at"])
                _password_set(user=user, password=new_password)
                accepted = user
            else:  # committed: the error is raised after this block
                OneTimeCode.objects.filter(pk=latest.pk).update(attempts=F("attempts") + 1)
    if accepted is None:
        raise InvalidCode(field="code")
    lockout.reset(email=accepted.email)
    return accepted


@transaction.atomic
def user_update(*, user: User, **fields) -> User:
    allowed = {"first_name", "last_name"}
    changed = [name for name, value in fields.items() if name in allowed and getattr(user, name) != value]
    for name in changed:
        setattr(user, name, fields[name].strip())
    if changed:
        user.save(update_fields=changed)
    return user
