"""``/api/v1/mcp/``: the MCP server (Streamable HTTP, stateless, JSON responses) for integrators' agents.

Authentication, the organization and the key's access are decided as for every API endpoint (the policy); only
API keys may use it (a person has the co-pilot). The exchange itself is the SDK's (``assistant.mcp_server``)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import action

from config.api.errors import DomainError
from config.api.parsers import JSONParser
from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER

from .. import mcp_server


class ApiKeyRequired(DomainError):
    code = "api_key_required"
    status = 403
    title = "The MCP server is used with an API key."


class McpViewSet(OrganizationViewSet):
    queryset = None
    # Every key of the organization may connect: what it sees is the registry's tools its access allows.
    action_permissions = {"mcp": MEMBER}
    parser_classes = [JSONParser]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The JSON-RPC response."),
            202: OpenApiResponse(description="A notification or response was accepted."),
        },
        tags=["mcp"],
        description="Model Context Protocol, Streamable HTTP transport (stateless; JSON responses, no SSE): one "
        "JSON-RPC message per POST (`initialize`, `tools/list`, `tools/call`, `ping`). API keys only (403 "
        "`api_key_required`); the tools are the co-pilot's registry as the key's scopes, its creator's role and "
        "the plan allow. Write tools run directly as the key, audited as `<key name> via MCP` (decision 0019).",
    )
    @action(detail=False, methods=["post"], url_path="mcp")
    def mcp(self, request):
        if self.access.principal != "api_key":
            raise ApiKeyRequired()
        status, headers, body = mcp_server.handle(self.access, request._request)
        response = HttpResponse(body, status=status)
        for name, value in headers:
            if name.lower() not in ("content-length",):
                response[name] = value
        return response
