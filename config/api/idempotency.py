"""``Idempotency-Key`` for organization-scoped writes: a retried request replays the first answer.

The same key with the same request replays the stored response (``Idempotent-Replayed: true``); the same key
with a different request is refused with 422 ``idempotency_key_reused``; a key whose first request is still
running answers 409 ``idempotency_key_in_progress``. Keys are scoped to the organization and the caller and
kept 24 hours. Server errors (5xx) are not stored, so a retry runs again.

The keys live in Redis. When it cannot be reached the request is not processed: 503 ``idempotency_unavailable``
with ``Retry-After`` (the backoff of config/breaker.py), never a false ``idempotency_key_reused``; the client
retries with the same key and nothing was written twice. Requests without a key are served as usual.
(docs/decisions/0005-integrator-guarantees.md)
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math

from django.http.request import RawPostDataException
from rest_framework import status
from rest_framework.response import Response

from config.breaker import Breaker, Unavailable
from config.cache import control_cache

from .errors import Conflict, DomainError

logger = logging.getLogger(__name__)

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


class IdempotencyUnavailable(DomainError):
    code = "idempotency_unavailable"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "Idempotency keys cannot be checked right now; the request was not processed. Retry with the same key."

    def __init__(self):
        retry_after = max(1, math.ceil(Breaker.backoff_seconds()))
        super().__init__(headers={"Retry-After": str(retry_after)}, extra={"retry_after": retry_after})


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
        cache = control_cache()
        try:
            stored = cache.strict.get(cache_key)
            claimed = stored is None and cache.strict.add(
                cache_key, {"fingerprint": fingerprint, "state": "running"}, LOCK_SECONDS
            )
            if not claimed:
                stored = stored or cache.strict.get(cache_key) or {}
        except Unavailable as exc:
            raise IdempotencyUnavailable() from exc
        if claimed:
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
            try:
                cache.strict.set(cache_key, record, TTL_SECONDS)
            except Unavailable:  # Redis went away while the request ran: the answer stands, unrecorded
                logger.warning("idempotency record not stored (Redis unreachable); a retry may run again")
            return response
        if stored.get("fingerprint") != fingerprint:
            raise IdempotencyKeyReused()
        if stored.get("state") != "done":
            raise IdempotencyKeyInProgress()
        replay = Response(stored["data"], status=stored["status"], headers=stored["headers"])
        replay["Idempotent-Replayed"] = "true"
        return replay

    return run
