"""Accounts and sessions: sign-up, sign-in, tokens."""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django_tenants.utils import tenant_context
from rest_framework_simplejwt.tokens import RefreshToken

from billing.services import subscription_start
from pipelines.services import pipeline_create_default
from rbac.choices import SystemRole
from rbac.services import membership_create
from tenants.models import Organization
from tenants.services import organization_create

from .errors import EmailTaken, WeakPassword
from .models import User, normalize_email


def _validate_password(password: str, user: User | None = None) -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise WeakPassword(" ".join(exc.messages), field="password") from exc


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
    with tenant_context(organization):
        pipeline_create_default()
    return user, organization


def tokens_for(*, user: User) -> dict[str, str]:
    """A new session: a refresh token (rotated on use) and a short-lived access token."""
    refresh = RefreshToken.for_user(user)
    return {"refresh": str(refresh), "access": str(refresh.access_token)}


def user_sign_in(*, email: str, password: str, ip: str) -> User | None:
    """The user for these credentials, or None. Lockout checks arrive with brute-force protection."""
    from django.contrib.auth import authenticate

    return authenticate(email=normalize_email(email), password=password)


@transaction.atomic
def user_update(*, user: User, **fields) -> User:
    allowed = {"first_name", "last_name"}
    changed = [name for name, value in fields.items() if name in allowed and getattr(user, name) != value]
    for name in changed:
        setattr(user, name, fields[name].strip())
    if changed:
        user.save(update_fields=changed)
    return user
