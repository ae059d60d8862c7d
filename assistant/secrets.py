"""The organization's model key, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key is ``ASSISTANT_ENCRYPTION_KEY`` (any string) or, when unset, derived from ``SECRET_KEY``; either is stretched
with HKDF-SHA256 to the 32 bytes Fernet wants. Rotating the secret makes stored keys unreadable: the co-pilot
then answers ``assistant_not_configured`` until an owner saves the key again.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


@functools.cache
def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"crm.assistant.model-key").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _current() -> Fernet:
    return _fernet(settings.ASSISTANT_ENCRYPTION_KEY or settings.SECRET_KEY)


def encrypt(value: str) -> str:
    return _current().encrypt(value.encode()).decode()


def decrypt(token: str) -> str | None:
    """The plain key, or None when it cannot be read (the secret changed)."""
    try:
        return _current().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
