"""Authentication of integrations by API key. The tenant middleware has already looked the key up."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication


class InvalidApiKey(exceptions.AuthenticationFailed):
    default_detail = "The API key is invalid, revoked or expired."
    default_code = "invalid_api_key"


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer crmk_…`` or ``X-API-Key: crmk_…``. The key acts with its own scopes, never
    beyond what its creator currently holds."""

    def authenticate(self, request):
        from . import apikeys

        raw = apikeys.api_key_of(request._request)
        if raw is None:
            return None
        key = getattr(request._request, "api_key", None)
        if key is None or key.created_by is None or not key.created_by.is_active:
            raise InvalidApiKey()
        apikeys.touch(key)
        return key.created_by, key

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
