"""The MCP server under /api/v1/mcp/, used by the official SDK's client (Streamable HTTP) against a real HTTP
server: what a key sees and reaches is exactly what its access allows, and nothing of another organization."""

from __future__ import annotations

import threading
import uuid
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import anyio
import httpx2
import pytest
from django.db import connections
from django_tenants.utils import tenant_context
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from crm.models import Lead
from crm.services import lead_create
from identity import apikeys
from identity.models import ApiKey
from integrations.models import OutboxEvent
from rbac.models import AuditEntry
from tests.conftest import committed
from tests.factories import SYSTEM, make_member, make_user

pytestmark = pytest.mark.django_db(transaction=False)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _closing(app):
    def wrapped(environ, start_response):
        try:
            return list(app(environ, start_response))
        finally:
            connections.close_all()  # the server's threads keep no connection past the request

    return wrapped


@pytest.fixture
def server(db):
    from config.wsgi import application

    httpd = make_server(
        "127.0.0.1", 0, _closing(application), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/api/v1/mcp/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def keys(tenants):
    made: list[int] = []

    def make(organization, creator, scopes, name=None):
        key, raw = committed(
            apikeys.apikey_create,
            organization=organization,
            name=name or f"Agent {uuid.uuid4().hex[:6]}",
            scopes=scopes,
            actor=creator,
        )
        made.append(key.pk)
        return raw

    yield make

    def clean():
        AuditEntry.objects.filter(target_type="api_key", target_id__in=[str(pk) for pk in made]).delete()
        AuditEntry.objects.filter(action="assistant.mcp.write").delete()
        ApiKey.objects.filter(pk__in=made).delete()

    committed(clean)


@pytest.fixture
def leads(tenants):
    made: list[tuple[object, int]] = []

    def make(organization, **fields):
        def create():
            with tenant_context(organization):
                return lead_create(actor=SYSTEM, **fields).pk

        pk = committed(create)
        made.append((organization, pk))
        return pk

    yield make

    def clean():
        for organization, pk in made:
            with tenant_context(organization):
                OutboxEvent.objects.filter(subject_type="lead", subject_id=str(pk)).delete()
                Lead.objects.filter(pk=pk).delete()

    committed(clean)


def session(url, headers, work):
    async def main():
        async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
            async with streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write):
                async with ClientSession(read, write) as client:
                    await client.initialize()
                    return await work(client)

    return anyio.run(main)


def tool_names(url, raw):
    async def work(client):
        return [tool.name for tool in (await client.list_tools()).tools]

    return session(url, {"X-API-Key": raw}, work)


def call(url, raw, name, arguments):
    async def work(client):
        return await client.call_tool(name, arguments)

    return session(url, {"X-API-Key": raw}, work)


def test_a_key_lists_only_the_tools_its_scopes_allow(server, keys, org_a, owner_a):
    reader = keys(org_a, owner_a, {"crm.lead.view": "all"})
    assert tool_names(server, reader) == ["search_records", "get_record"]

    writer = keys(org_a, owner_a, {"crm.lead.view": "all", "crm.lead.update": "all"})

    async def work(client):
        return {tool.name: tool.annotations for tool in (await client.list_tools()).tools}

    offered = session(server, {"X-API-Key": writer}, work)
    assert "update_lead_status" in offered
    assert offered["update_lead_status"].read_only_hint is False
    assert offered["update_lead_status"].destructive_hint is True
    assert offered["get_record"].read_only_hint is True


def test_a_record_out_of_reach_is_the_apis_not_found(request, server, keys, leads, org_a, owner_a):
    rep = committed(make_user)
    membership = committed(make_member, user=rep, organization=org_a, role="sales_rep")

    def forget_the_rep() -> None:  # the organizations live for the whole run: leave no member, nor its audit
        AuditEntry.objects.filter(target_type="membership", target_id=str(membership.pk)).delete()
        membership.delete()
        rep.delete()

    request.addfinalizer(lambda: committed(forget_the_rep))
    others = leads(org_a, name="Someone else's", owner_id=owner_a.pk)
    mine = leads(org_a, name="The rep's own", owner_id=rep.pk)
    raw = keys(org_a, rep, {"crm.lead.view": "own"})

    result = call(server, raw, "get_record", {"type": "lead", "id": others})
    assert result.is_error
    assert result.structured_content["error"]["code"] == "not_found"

    result = call(server, raw, "get_record", {"type": "lead", "id": mine})
    assert not result.is_error
    assert result.structured_content["result"]["record"]["name"] == "The rep's own"


def test_a_write_tool_runs_as_the_key_audited_via_mcp(server, keys, leads, org_a, owner_a):

    lead = leads(org_a, name="To qualify", owner_id=owner_a.pk)
    raw = keys(org_a, owner_a, {"crm.lead.view": "all", "crm.lead.update": "all"}, name="Zap")

    result = call(server, raw, "update_lead_status", {"lead_id": lead, "status": "contacted"})
    assert not result.is_error, result.structured_content
    assert result.structured_content["done"] is True

    def status():
        with tenant_context(org_a):
            return Lead.objects.get(pk=lead).status

    assert committed(status) == "contacted"

    def trail():
        with tenant_context(org_a):
            event = OutboxEvent.objects.filter(subject_id=str(lead)).exclude(type="lead.created").get()
        entry = AuditEntry.objects.get(action="assistant.mcp.write", organization=org_a, target_id="update_lead_status")
        return event.actor_label, entry.actor_label, entry.actor_id

    assert committed(trail) == ("Zap via MCP", "Zap via MCP", owner_a.pk)


def test_without_a_key_it_is_401(server):
    response = httpx2.post(server, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_key_of_another_organization_cannot_reach_this_one(server, keys, leads, org_a, org_b, owner_b):
    lead_a = leads(org_a, name="A's lead")
    raw_b = keys(org_b, owner_b, {"crm.lead.view": "all"})

    response = httpx2.post(
        server,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"X-API-Key": raw_b, "X-Organization": org_a.slug, "Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "organization_not_found"

    result = call(server, raw_b, "get_record", {"type": "lead", "id": lead_a})  # its own organization's schema
    assert result.is_error
    assert result.structured_content["error"]["code"] == "not_found"


def test_a_signed_in_person_is_told_to_use_a_key(server, owner_a, org_a):
    from identity.services import tokens_for

    headers = {"Authorization": f"Bearer {tokens_for(user=owner_a)['access']}", "X-Organization": org_a.slug}
    response = httpx2.post(server, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers, timeout=10)
    assert response.status_code == 403
    assert response.json()["code"] == "api_key_required"


def test_one_stateless_post_lists_tools_and_get_is_405(server, keys, org_a, owner_a):
    """Without the SDK: one POST is a whole exchange (no initialize, no session); there is no GET stream."""
    raw = keys(org_a, owner_a, {"crm.lead.view": "all"})
    headers = {"X-API-Key": raw, "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}
    response = httpx2.post(server, json=message, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert [tool["name"] for tool in response.json()["result"]["tools"]] == ["search_records", "get_record"]
    assert httpx2.get(server, headers=headers, timeout=10).status_code == 405
