"""The MCP server: the co-pilot's tool registry (:mod:`assistant.tools`) offered to integrators' agents over the
Model Context Protocol's Streamable HTTP transport, authenticated by an API key as the REST API is.

Django serves it under WSGI (gunicorn gthread), so each POST is one whole MCP exchange: the official SDK's
server runs *stateless* with *JSON responses* (no session, no SSE stream) for that one request, on an event loop
of its own (``async_to_sync``); each tool runs back on the request's own thread (``sync_to_async``,
thread-sensitive), with its database connection and the organization's schema, exactly as the API's views do.

What an agent sees is what the key may do (decision 0019, "The MCP server"):

- ``tools/list``: :func:`assistant.tools.offered` for the key's access (key scopes ∩ the creator's role now ∩ the
  plan); a write tool is annotated ``readOnlyHint=False`` (``destructiveHint`` when it changes existing records);
- ``tools/call``: a read tool runs; a write tool runs *directly*, as the key's access, audited as
  ``"<key name> via MCP"`` — there is no person to confirm a proposal. A record out of reach is the API's
  ``not_found``; every refusal comes back as a tool error carrying the API's ``code``.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from config.api.errors import DomainError
from rbac.access import Access

from . import services, tools

SERVER_NAME = "crm"
MAX_BODY_BYTES = 256 * 1024
#: Tools whose write changes a record that already exists (the rest only add one).
DESTRUCTIVE = frozenset({"update_lead_status", "move_deal"})


def _encode(content: Any) -> str:
    return tools.encode(content, limit=50_000)


def described(tool: tools.Tool) -> types.Tool:
    annotations = types.ToolAnnotations(
        title=tool.name.replace("_", " ").capitalize(),
        read_only_hint=not tool.writes,
        destructive_hint=tool.name in DESTRUCTIVE if tool.writes else None,
        idempotent_hint=None if tool.writes else True,
        open_world_hint=False,
    )
    return types.Tool(
        name=tool.name, description=tool.description, input_schema=tool.json_schema(), annotations=annotations
    )


def _error(code: str, detail: str, **extra: Any) -> types.CallToolResult:
    body = {"error": {"code": code, "detail": detail, **extra}}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_encode(body))], structured_content=body, is_error=True
    )


def call_tool(access: Access, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
    """One tool call for the key (sync: the ORM, on the request's thread)."""
    outcome = tools.call(access, name, arguments or {})
    if not outcome.ok:
        error = outcome.content["error"]
        return _error(error["code"], error["detail"], **{k: v for k, v in error.items() if k not in ("code", "detail")})
    if outcome.draft is not None:  # a write: nobody to confirm it, so it is done as the key, or not at all
        try:
            result = services.mcp_write(actor=access, tool=name, arguments=outcome.draft.arguments)
        except DomainError as refused:
            problem = refused.problem()
            return _error(problem["code"], problem["detail"])
        content: dict[str, Any] = {"done": True, "summary": outcome.draft.summary, "result": result}
        references = outcome.draft.references
    else:
        content, references = outcome.content, outcome.references
    body = {**content, "references": references}
    structured = json.loads(json.dumps(body, cls=DjangoJSONEncoder))  # dates and decimals as the API writes them
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_encode(body))], structured_content=structured, is_error=False
    )


def _server(access: Access) -> Server:
    async def list_tools(ctx, params) -> types.ListToolsResult:
        offered = await sync_to_async(tools.offered, thread_sensitive=True)(access)
        return types.ListToolsResult(tools=[described(tool) for tool in offered])

    async def run_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await sync_to_async(call_tool, thread_sensitive=True)(access, params.name, params.arguments)

    return Server(
        SERVER_NAME,
        version="1",
        instructions="CRM records (leads, contacts, companies, deals) within the API key's reach.",
        on_list_tools=list_tools,
        on_call_tool=run_tool,
    )


async def _exchange(access: Access, scope: dict[str, Any], body: bytes) -> tuple[int, list, bytes]:
    manager = StreamableHTTPSessionManager(
        app=_server(access), json_response=True, stateless=True, max_request_body_size=MAX_BODY_BYTES
    )
    answer: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    async with manager.run():
        await manager.handle_request(scope, receive, send)
    return answer["status"], answer["headers"], answer["body"]


def handle(access: Access, request) -> tuple[int, list[tuple[str, str]], bytes]:
    """Answer one Streamable HTTP request (the Django ``request``) as the SDK's server: status, headers, body."""
    body = request.body
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.META.get("QUERY_STRING", "").encode(),
        "root_path": "",
        "headers": [
            (name.lower().encode(), value.encode("latin-1", "replace"))
            for name, value in request.headers.items()
            if name.lower() not in ("authorization", "x-api-key", "cookie")  # the key stays with Django
        ],
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
        "server": ("localhost", 80),
    }
    status, raw_headers, content = async_to_sync(_exchange)(access, scope, body)
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw_headers]
    return status, headers, content
