"""Google sign-in: verify an ID token (Google Identity Services) with google-auth.

The token must be signed by one of the keys published at ``GOOGLE_CERTS_URL``, be unexpired, be issued by Google
for one of our OAuth client IDs (``GOOGLE_CLIENT_IDS``) and carry a verified e-mail address. Without client IDs
Google sign-in is off (404 ``google_sign_in_disabled``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from django.conf import settings
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request
from google.oauth2 import id_token as google_id_token

from config.mail import normalize_email

from .errors import GoogleSignInDisabled, GoogleUnavailable, InvalidGoogleToken

logger = logging.getLogger(__name__)

ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CLOCK_SKEW_SECONDS = 10

_JwkError: type[Exception]
try:  # google-auth verifies JWK-format certificate sets with PyJWT, when it is installed
    from jwt import PyJWTError as _JwkError
except ImportError:  # pragma: no cover
    _JwkError = ValueError


@dataclass(frozen=True)
class GoogleIdentity:
    subject: str
    email: str
    first_name: str
    last_name: str


class _Request(Request):
    """google-auth's requests transport with a short timeout (its default is two minutes)."""

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        timeout = timeout or settings.GOOGLE_CERTS_TIMEOUT_SECONDS
        return super().__call__(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)


def enabled() -> bool:
    return bool(settings.GOOGLE_CLIENT_IDS)


def verify_id_token(raw: str) -> GoogleIdentity:
    """The person a Google ID token names; :class:`InvalidGoogleToken` when it proves nothing."""
    if not enabled():
        raise GoogleSignInDisabled()
    try:
        with requests.Session() as session:
            claims = google_id_token.verify_token(
                raw,
                _Request(session=session),
                audience=list(settings.GOOGLE_CLIENT_IDS),
                certs_url=settings.GOOGLE_CERTS_URL,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
    except google_exceptions.TransportError as exc:
        logger.warning("could not fetch Google's signing certificates", exc_info=True)
        raise GoogleUnavailable() from exc
    except (ValueError, google_exceptions.GoogleAuthError, _JwkError) as exc:
        # bad signature, unknown key, expired, wrong audience, malformed: the caller learns only "invalid"
        logger.info("Google ID token refused: %s", exc)
        raise InvalidGoogleToken() from exc
    if claims.get("iss") not in ISSUERS:
        raise InvalidGoogleToken()
    email = normalize_email(claims.get("email") or "")
    if not email or not claims.get("sub"):
        raise InvalidGoogleToken()
    if claims.get("email_verified") not in (True, "true"):
        raise InvalidGoogleToken("The Google account's e-mail address is not verified.")
    return GoogleIdentity(
        subject=str(claims["sub"]),
        email=email,
        first_name=str(claims.get("given_name") or "")[:150],
        last_name=str(claims.get("family_name") or "")[:150],
    )
