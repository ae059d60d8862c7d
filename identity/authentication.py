"""Authentication of API requests: JWT access tokens (people) and API keys (integrations).

The user a request acts as is read from the ``control`` cache, not from PostgreSQL on every request. Every saved
or deleted user gets a new cache generation (:func:`forget_user`, connected in ``IdentityConfig.ready``), so
deactivation, a password change (``CHECK_REVOKE_TOKEN`` compares the token with the current password hash) or any
other change applies on the very next request. A cached row carries the generation that was current before it was
read, so a request that read the row before a change committed cannot make the old row current again.
"""

from __future__ import annotations

import uuid

from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from .models import User

USER_CACHE_TTL_SECONDS = 300


def _keys(user_id) -> tuple[str, str]:
    """(the user's generation, the cached row with the generation it was read under)."""
    return f"identity:user:{user_id}:generation", f"identity:user:{user_id}"


def user_by_id(user_id) -> User | None:
    """The user with this id as PostgreSQL has it now, or None; one cache round trip when warm."""
    cache = caches["control"]
    generation_key, key = _keys(user_id)
    found = cache.get_many([generation_key, key])
    generation = found.get(generation_key)
    cached = found.get(key)
    if cached is not None and cached[0] == generation:
        return cached[1]
    user = User.objects.filter(pk=user_id).first()
    if user is not None:
        # Under the generation read before the row: if the user changes meanwhile, this entry is already stale.
        cache.set(key, (generation, user), USER_CACHE_TTL_SECONDS)
    return user


def forget_user(user_id) -> None:
    """Start a new generation of the user's cache entry, now and again after commit."""
    if user_id is None:
        return
    generation_key, _key = _keys(user_id)

    def _forget() -> None:
        caches["control"].set(generation_key, uuid.uuid4().hex, None)

    _forget()
    transaction.on_commit(_forget)


def _user_changed(sender, instance, **kwargs) -> None:
    forget_user(instance.pk)


def connect_signals() -> None:
    """Every save or delete of a user outdates its cached copy; called from ``IdentityConfig.ready`` in every
    process (web, workers, management commands). A ``QuerySet.update()`` of users sends no signal: call
    :func:`forget_user` after one."""
    post_save.connect(_user_changed, sender=User, dispatch_uid="identity.forget_user.save")
    post_delete.connect(_user_changed, sender=User, dispatch_uid="identity.forget_user.delete")


class CachedUserJWTAuthentication(JWTAuthentication):
    """simplejwt's ``JWTAuthentication`` with the user read through :func:`user_by_id`; the same checks (active,
    password unchanged since the token was issued) with the same errors."""

    def get_user(self, validated_token):
        if api_settings.USER_ID_FIELD not in ("id", "pk"):  # tokens name users by another field: no cache
            return super().get_user(validated_token)
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as e:
            raise InvalidToken(str(_("Token contained no recognizable user identification"))) from e

        user = user_by_id(user_id)
        if user is None:
            raise AuthenticationFailed(str(_("User not found")), code="user_not_found")

        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(str(_("User is inactive")), code="user_inactive")

        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(str(_("The user's password has been changed.")), code="password_changed")

        return user


class InvalidApiKey(exceptions.AuthenticationFailed):
    default_detail = "The API key is invalid, revoked or expired."
    default_code = "invalid_api_key"


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer crmk_…`` or ``X-API-Key: crmk_…``. The key acts with its own scopes, never
    beyond what its creator currently holds; a deactivated creator's keys stop at once."""

    def authenticate(self, request):
        from . import apikeys

        raw = apikeys.api_key_of(request._request)
        if raw is None:
            return None
        key = getattr(request._request, "api_key", None)
        if key is None or key.created_by_id is None:
            raise InvalidApiKey()
        creator = user_by_id(key.created_by_id)  # the key itself is cached for minutes; its creator is read now
        if creator is None or not creator.is_active:
            raise InvalidApiKey()
        key.created_by = creator
        apikeys.touch(key)
        return creator, key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ApiKeySchema(OpenApiAuthenticationExtension):
    target_class = "identity.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key (`crmk_…`), also accepted as `Authorization: Bearer crmk_…`. "
            "It selects its organization by itself.",
        }


class CachedUserJWTSchema(SimpleJWTScheme):
    """The same ``jwtAuth`` scheme as simplejwt's own class."""

    target_class = "identity.authentication.CachedUserJWTAuthentication"
