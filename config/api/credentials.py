"""What kind of credential a request authenticated with, told without importing the app that issues it.

A credential bound to one organization (an API key, ``identity.models.ApiKey``: it has ``organization_id`` and
``scopes``) acts for that organization with its own scopes, never as the person who created it; a session token
(JWT) is a person. Authentication leaves the credential in ``request.auth``.
"""

from __future__ import annotations

from typing import Any


def organization_credential(request) -> Any | None:
    """The request's credential when it is bound to one organization (an API key), else None."""
    auth = getattr(request, "auth", None)
    return auth if getattr(auth, "organization_id", None) is not None else None
