"""``Idempotency-Key`` for organization-scoped writes: a retried request replays the first answer.

The same key with the same request replays the stored response (``Idempotent-Replayed: true``); the same key
with a different request is refused with 422 ``idempotency_key_reused``; a key whose first request is still
running answers 409 ``idempotency_key_in_progress``. Keys are scoped to the organization and the caller and
kept 24 hours. Server errors (5xx) are not stored, so a retry runs again.
"""

from __future__ import annotations

import functools
import hashlib
import json

from django.core.cache import caches
from django.http.request import RawPostDataException
from rest_framework import status
from rest_framework.response import Response

from .errors import Conflict, DomainError

HEADER = "HTTP_IDEMPOTENCY_KEY"
TTL_SECONDS = 24 * 3600
LOCK_SECONDS = 60
MAX_KEY_LENGTH = 255
REPLAYED_HEADERS = ("Location", "Content-Type")


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = status.HTTP_422_UNPROCESSABLE_ENTITY
    title = "This Idempotency-Key was used with a different request."


class IdempotencyKeyInProgress(Conflict):
    code = "idempotency_key_in_progress"
    title = "A request with this Idempotency-Key is still being processed."


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"
    status = status.HTTP_400_BAD_REQUEST
    title = "The Idempotency-Key header must be 1 to 255 visible characters."


def _fingerprint(request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.get_full_path()}\n".encode())
    try:
        digest.update(request._request.body)
    except RawPostDataException:  # multipart already parsed: hash its fields and files
        digest.update(json.dumps(request.POST.lists() and sorted(request.POST.lists()), default=str).encode())
        for name, upload in sorted(request.FILES.items()):
            digest.update(f"{name}:{upload.name}:{upload.size}".encode())
    return digest.hexdigest()


def guard(view, handler):
    """Wrap ``handler`` so a POST carrying an Idempotency-Key runs at most once per key."""
    request = view.request
    key = request.META.get(HEADER)
    if request.method != "POST" or key is None:
        return handler
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKey()
    access = request.access
    scope = f"{access.organization_id}:{access.principal}:{access.key_id or access.user_id}"
    cache_key = "idempotency:" + hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()
    fingerprint = _fingerprint(request)

    @functools.wraps(handler)
    def run(*args, **kwargs):
        cache = caches["control"]
        stored = cache.get(cache_key)
        if stored is None and cache.add(cache_key, {"fingerprint": fingerprint, "state": "running"}, LOCK_SECONDS):
            try:
                response = handler(*args, **kwargs)
            except Exception:
                cache.delete(cache_key)
                raise
            if response.status_code >= 500:
                cache.delete(cache_key)
                return response
            headers = {name: response[name] for name in REPLAYED_HEADERS if response.has_header(name)}
            record = {"fingerprint": fingerprint, "state": "done", "status": response.status_code}
            record.update(data=getattr(response, "data", None), headers=headers)
            cache.set(cache_key, record, TTL_SECONDS)
            return response
        stored = stored or cache.get(cache_key) or {}
        if stored.get("fingerprint") != fingerprint:
            raise IdempotencyKeyReused()
        if stored.get("state") != "done":
            raise IdempotencyKeyInProgress()
        replay = Response(stored["data"], status=stored["status"], headers=stored["headers"])
        replay["Idempotent-Replayed"] = "true"
        return replay

    return run
