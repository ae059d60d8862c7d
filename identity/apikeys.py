"""API keys: ``crmk_`` + 40 random base62 characters + a 6-character CRC32 checksum.

The recognizable prefix and the checksum let secret scanners spot a leaked key and let us refuse a mistyped
one without a database lookup. The full key is shown once; we keep its SHA-256 (the secret has 238 bits of
entropy, so a fast hash is the right tool), the first characters and the last four.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.api.errors import Conflict
from config.decision_cache import invalidate_decisions
from rbac import audit
from rbac.grants import grants_check_held, grants_validated
from tenants.middleware import CredentialOrganization

from .models import ApiKey

KEY_PREFIX = "crmk_"
ALPHABET = string.digits + string.ascii_letters
BODY_LENGTH = 40
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(KEY_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
CACHE_TTL_SECONDS = 300
LAST_USED_RESOLUTION_SECONDS = 60
_NONE = "-"


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return f"{KEY_PREFIX}{body}{_checksum(body)}"


def looks_like_key(raw: str | None) -> bool:
    return raw is not None and raw.startswith(KEY_PREFIX)


def api_key_of(request) -> str | None:
    """The API key the request carries (``Authorization: Bearer crmk_…`` or ``X-API-Key``), if any."""
    header = request.META.get("HTTP_X_API_KEY")
    if header:
        return header.strip()
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and looks_like_key(credentials) else None


def organization_of_request(request) -> CredentialOrganization | None:
    """The organization of the API key the request carries (None: it carries none), for tenant resolution
    (``tenants.middleware``). The key found is left on the request for authentication (None answers 401)."""
    raw = api_key_of(request)
    if raw is None:
        return None
    key = key_for(raw)
    request.api_key = key
    return CredentialOrganization(organization_id=key.organization_id if key is not None else None)


def well_formed(raw: str) -> bool:
    if len(raw) != KEY_LENGTH or not raw.startswith(KEY_PREFIX):
        return False
    body, checksum = raw[len(KEY_PREFIX) : -CHECKSUM_LENGTH], raw[-CHECKSUM_LENGTH:]
    return all(char in ALPHABET for char in body) and secrets.compare_digest(_checksum(body), checksum)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _cache_key(secret_hash: str) -> str:
    return f"apikey:{secret_hash}"


def key_for(raw: str) -> ApiKey | None:
    """The usable key for this secret, or None (malformed, unknown, revoked or expired). Cached."""
    if not well_formed(raw):
        return None
    secret_hash = _hash(raw)
    cache = caches["control"]
    found = cache.get(_cache_key(secret_hash))
    if found is None:
        found = ApiKey.objects.select_related("created_by").filter(secret_hash=secret_hash).first() or _NONE
        cache.set(_cache_key(secret_hash), found, CACHE_TTL_SECONDS)
    if found == _NONE or not found.is_usable():
        return None
    return found


def touch(key: ApiKey) -> None:
    """Record use at most once a minute per key, so a busy key costs no write per request."""
    if caches["control"].add(f"apikey:used:{key.pk}", 1, LAST_USED_RESOLUTION_SECONDS):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())


def _forget(key: ApiKey) -> None:
    caches["control"].delete(_cache_key(key.secret_hash))
    transaction.on_commit(lambda: caches["control"].delete(_cache_key(key.secret_hash)))
    invalidate_decisions(organization_id=key.organization_id)


def _scopes_validated(scopes: dict[str, str], actor_grants: dict[str, str] | None) -> dict[str, str]:
    """A key's scopes are grants: known, fitting, and never beyond what its creator holds."""
    clean = grants_validated(scopes, field="scopes")
    grants_check_held(clean, held=actor_grants)
    return clean


def _snapshot(key: ApiKey) -> dict:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked": key.revoked_at is not None,
    }


@transaction.atomic
def apikey_create(
    *, organization, name: str, scopes: dict[str, str], actor, actor_grants=None, expires_at=None
) -> tuple[ApiKey, str]:
    """Create a key whose scopes never exceed what its creator holds. Returns the key and its secret."""
    raw = generate()
    key = ApiKey.objects.create(
        organization=organization,
        name=name.strip(),
        prefix=raw[:12],
        last_four=raw[-4:],
        secret_hash=_hash(raw),
        scopes=_scopes_validated(scopes, actor_grants),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        expires_at=expires_at,
    )
    audit.record(
        organization=organization,
        actor=actor,
        action="api_key.created",
        target_type="api_key",
        target_id=key.pk,
        after=_snapshot(key),
    )
    return key, raw


@transaction.atomic
def apikey_revoke(*, key: ApiKey, actor, reason: str = "") -> ApiKey:
    """Revoke a key for good (refused from the next request); audited, with ``reason`` when another change caused
    it (e.g. ``membership.removed``)."""
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        before = _snapshot(key)
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        after = {**_snapshot(key), "reason": reason} if reason else _snapshot(key)
        audit.record(
            organization=key.organization,
            actor=actor,
            action="api_key.revoked",
            target_type="api_key",
            target_id=key.pk,
            before=before,
            after=after,
        )
        _forget(key)
    return key


def apikeys_revoke_of_member(*, organization, user_id: int, actor, reason: str) -> list[ApiKey]:
    """Revoke every key the member created in the organization that could still work, each through
    :func:`apikey_revoke` (audited). Called when the member leaves, is removed or deactivated: a key acts with its
    creator's current grants, so one left alive would wake up, with the new role's grants, if the person came back."""
    now = timezone.now()
    keys = ApiKey.objects.filter(organization=organization, created_by_id=user_id, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    return [apikey_revoke(key=key, actor=actor, reason=reason) for key in keys.order_by("pk")]


@transaction.atomic
def apikey_rotate(*, key: ApiKey, actor, actor_grants=None) -> tuple[ApiKey, str]:
    """A new secret with the same name and scopes; the old one keeps working for the grace period."""
    old = ApiKey.objects.select_for_update().get(pk=key.pk)
    if not old.is_usable():
        raise Conflict("A revoked or expired key cannot be rotated.")
    new, raw = apikey_create(
        organization=old.organization,
        name=old.name,
        scopes=old.scopes,
        actor=actor,
        actor_grants=actor_grants,
        expires_at=old.expires_at,
    )
    grace_end = timezone.now() + timedelta(seconds=settings.API_KEY_ROTATION_GRACE_SECONDS)
    old.expires_at = min(old.expires_at, grace_end) if old.expires_at else grace_end
    old.replaced_by = new
    old.save(update_fields=["expires_at", "replaced_by"])
    audit.record(
        organization=old.organization,
        actor=actor,
        action="api_key.rotated",
        target_type="api_key",
        target_id=old.pk,
        after={"replaced_by": new.pk, "old_valid_until": old.expires_at.isoformat()},
    )
    _forget(old)
    return new, raw


def revoke_keys_when_membership_changes(sender, *, organization, user_id: int, actor, action: str, **kwargs) -> None:
    """Receiver of ``rbac.signals.membership_ended`` and ``membership_started`` (connected in
    ``IdentityConfig.ready``): the member's keys in the organization are revoked, in the same transaction."""
    apikeys_revoke_of_member(organization=organization, user_id=user_id, actor=actor, reason=action)
