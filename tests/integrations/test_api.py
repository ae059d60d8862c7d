"""The webhooks and events API: secrets shown once, plan limit, tenancy, permissions, log, actions."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal

import jsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Override
from config.decision_cache import invalidate_decisions
from crm import services as crm
from integrations.events import EVENTS, payload_schema
from integrations.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from tests.factories import SYSTEM

from ..conftest import client_for
from ..problems import field_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def create(as_owner_a, loopback, receiver):
    def post(client=None, **body):
        body = {"url": receiver.url, "event_types": ["lead.created"], **body}
        return (client or as_owner_a).post("/api/v1/webhooks/", body, format="json")

    return post


def test_create_shows_the_secret_once(as_owner_a, create, receiver):
    response = create(description="CRM → warehouse")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"][len("whsec_") :])) == 32
    assert body["url"] == receiver.url
    assert body["event_types"] == ["lead.created"]
    assert body["is_active"] is True
    listed = as_owner_a.get("/api/v1/webhooks/").json()["results"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in as_owner_a.get(f"/api/v1/webhooks/{body['id']}/").json()


def test_event_types_are_checked(create):
    response = create(event_types=["lead.created", "lead.teleported"])
    assert response.status_code == 400
    assert field_error(response)["code"] == "unknown_event_type"
    assert field_error(create(event_types=["webhook.ping"]))["code"] == "unknown_event_type"
    assert create(event_types=["*", "lead.created"]).json()["event_types"] == ["*"]


def test_update_revalidates_and_reenabling_clears_the_failure_record(as_owner_a, create, org_a, in_tenant):
    endpoint = create().json()
    with in_tenant(org_a):
        WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(
            is_active=False, disabled_reason="failing", disabled_at=timezone.now(), failing_since=timezone.now()
        )
    url = f"/api/v1/webhooks/{endpoint['id']}/"
    assert field_error(as_owner_a.patch(url, {"url": "http://10.0.0.1/"}, format="json"))["code"] == "unsafe_url"
    body = as_owner_a.patch(url, {"is_active": True, "event_types": ["*"]}, format="json").json()
    assert body["is_active"] is True
    assert body["event_types"] == ["*"]
    assert body["failing_since"] is None
    assert body["disabled_reason"] == ""


@pytest.mark.parametrize(("existing", "allowed"), [(1, True), (2, False), (3, False)])
def test_plan_limit_on_endpoints(org_a, in_tenant, create, make_endpoint, receiver, existing, allowed):
    """Limit 2: the one that makes N (N-1 existing) passes, the one past N does not."""
    Override.objects.create(organization=org_a, limit="webhook_endpoints", limit_value=2)
    invalidate_decisions(organization_id=org_a.pk)
    for _ in range(existing):
        with in_tenant(org_a):
            WebhookEndpoint.objects.create(url=receiver.url, event_types=["*"], secret="whsec_x")
    response = create()
    if allowed:
        assert response.status_code == 201
    else:
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "plan_limit_reached"
        assert body["limit"] == "webhook_endpoints"
        assert body["used"] == existing


def test_usage_counts_endpoints(as_owner_a, create):
    create()
    create()
    usage = as_owner_a.get("/api/v1/billing/usage/").json()
    found = usage if isinstance(usage, list) else usage.get("limits", usage.get("results", usage))
    assert "webhook_endpoints" in str(found)
    from billing.usage import counter_for
    from tenants.models import Organization

    assert counter_for("webhook_endpoints")(Organization.objects.get(slug="org-a")) == 2


def test_another_organizations_endpoint_is_not_found(org_b, owner_b, owner_a, org_a, make_endpoint, receiver, loopback):
    foreign, _ = make_endpoint(org_b, receiver.url)
    client = client_for(owner_a, org_a)
    for method, url in [
        ("get", f"/api/v1/webhooks/{foreign.pk}/"),
        ("patch", f"/api/v1/webhooks/{foreign.pk}/"),
        ("delete", f"/api/v1/webhooks/{foreign.pk}/"),
        ("post", f"/api/v1/webhooks/{foreign.pk}/ping/"),
        ("post", f"/api/v1/webhooks/{foreign.pk}/rotate-secret/"),
        ("post", f"/api/v1/webhooks/{foreign.pk}/replay/"),
        ("get", f"/api/v1/webhooks/{foreign.pk}/deliveries/"),
        ("post", f"/api/v1/webhooks/{foreign.pk}/deliveries/1/retry/"),
    ]:
        response = getattr(client, method)(url, {"since": timezone.now().isoformat()}, format="json")
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "not_found"
    assert client_for(owner_b, org_b).get(f"/api/v1/webhooks/{foreign.pk}/").status_code == 200


def test_a_foreign_delivery_is_not_found_under_ones_own_endpoint(
    org_a, org_b, as_owner_a, make_endpoint, receiver, loopback, in_tenant, django_capture_on_commit_callbacks
):
    own, _ = make_endpoint(org_a, receiver.url)
    make_endpoint(org_b, receiver.url)
    with in_tenant(org_b), django_capture_on_commit_callbacks(execute=True):
        crm.lead_create(actor=SYSTEM, name="B's lead")
    with in_tenant(org_b):
        foreign = WebhookDelivery.objects.get()
    response = as_owner_a.post(f"/api/v1/webhooks/{own.pk}/deliveries/{foreign.pk}/retry/")
    assert response.status_code == 404


@pytest.mark.parametrize("role", ["manager", "sales_rep", "support", "viewer"])
def test_only_roles_with_webhook_manage_reach_webhooks(org_a, member, role):
    _, client = member(org_a, role)
    response = client.get("/api/v1/webhooks/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert response.json()["permission"] == "integrations.webhook.manage"


def test_admin_manages_webhooks_and_manager_reads_events(org_a, member):
    _, admin = member(org_a, "admin")
    assert admin.get("/api/v1/webhooks/").status_code == 200
    _, manager = member(org_a, "manager")
    assert manager.get("/api/v1/events/").status_code == 200
    _, rep = member(org_a, "sales_rep")
    assert rep.get("/api/v1/events/").json()["code"] == "permission_denied"


def test_a_plan_without_webhooks_is_refused(org_a, as_owner_a):
    from billing.models import Feature

    Override.objects.create(
        organization=org_a, feature=Feature.objects.get(code="integrations.webhooks"), enabled=False
    )
    invalidate_decisions(organization_id=org_a.pk)
    body = as_owner_a.get("/api/v1/webhooks/event-types/").json()
    assert body["code"] == "feature_not_in_plan"


def test_event_types_publish_every_type_with_a_schema(as_owner_a):
    page = as_owner_a.get("/api/v1/webhooks/event-types/?page_size=100").json()
    body = page["results"]
    assert page["count"] == len(EVENTS) <= 100
    assert [item["name"] for item in body] == list(EVENTS)
    lead = next(item for item in body if item["name"] == "lead.created")
    assert lead["schema"]["properties"]["name"] == {"type": "string"}
    for item in body:
        jsonschema.Draft202012Validator.check_schema(item["schema"])


def test_real_payloads_match_their_schemas(org_a, in_tenant, owner_a):
    """The schemas tell the truth about what services record."""
    from pipelines import services as deals

    with in_tenant(org_a):
        lead = crm.lead_create(actor=SYSTEM, name="Schema", email="s@example.test", estimated_value=None)
        crm.lead_update(lead=lead, actor=SYSTEM, name="Schema 2", tags=["vip"])
        crm.lead_qualify(lead=lead, actor=SYSTEM)
        crm.lead_disqualify(lead=lead, actor=SYSTEM, reason="No budget")
        crm.lead_delete(lead=lead, actor=SYSTEM)
        deals.pipeline_create_default(actor=SYSTEM)
        deal = deals.deal_create(actor=SYSTEM, title="Big", amount=Decimal("1000.00"))
        won = deal.pipeline.stages.get(kind="won")
        deals.deal_update(deal=deal, actor=SYSTEM, title="Bigger")
        deals.deal_move_stage(deal=deal, stage=won, actor=SYSTEM)
        seen = set()
        for event in OutboxEvent.objects.all():
            jsonschema.validate(event.payload, payload_schema(event.type))
            seen.add(event.type)
    assert {"lead.created", "lead.updated", "lead.qualified", "lead.disqualified", "lead.deleted"} <= seen
    assert {"deal.created", "deal.updated", "deal.stage_changed", "deal.won"} <= seen


def test_ping_delivers_a_test_event_to_that_endpoint_only(
    as_owner_a, create, receiver, django_capture_on_commit_callbacks
):
    from standardwebhooks import Webhook

    first = create().json()
    create(event_types=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner_a.post(f"/api/v1/webhooks/{first['id']}/ping/")
    assert response.status_code == 202
    assert response.json()["event_type"] == "webhook.ping"
    [request] = receiver.wait_for(1)
    body = Webhook(first["secret"]).verify(request.body, request.headers)
    assert body["type"] == "webhook.ping"
    assert body["data"]["endpoint_id"] == first["id"]
    log = as_owner_a.get(f"/api/v1/webhooks/{first['id']}/deliveries/").json()["results"]
    assert log[0]["status"] == "succeeded"
    assert log[0]["webhook_id"] == request.webhook_id


def test_delivery_log_shows_attempts_in_constant_queries(
    as_owner_a, create, receiver, org_a, in_tenant, django_capture_on_commit_callbacks
):
    endpoint = create().json()
    receiver.behaviour.status = 500
    receiver.behaviour.body = b"e" * 5000

    def leads(count):
        for index in range(count):
            with in_tenant(org_a), django_capture_on_commit_callbacks(execute=True):
                crm.lead_create(actor=SYSTEM, name=f"Lead {index}")

    def fetch():
        with CaptureQueriesContext(connection) as queries:
            response = as_owner_a.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/?status=pending")
        return response.json(), len(queries)

    leads(1)
    body, one = fetch()
    [item] = body["results"]
    assert item["status"] == "pending"
    assert item["last_response_status"] == 500
    [attempt] = item["attempts"]
    assert attempt["response_status"] == 500
    assert len(attempt["response_body"]) == 2048
    assert attempt["latency_ms"] >= 0
    assert attempt["attempted_at"]
    leads(4)
    body, five = fetch()
    assert body["count"] == 5
    assert five == one
    assert as_owner_a.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/?status=succeeded").json()["count"] == 0


def test_retry_attempts_again_now_with_the_same_webhook_id(
    as_owner_a, create, receiver, org_a, in_tenant, django_capture_on_commit_callbacks
):
    endpoint = create().json()
    receiver.behaviour.status = 500
    with in_tenant(org_a), django_capture_on_commit_callbacks(execute=True):
        crm.lead_create(actor=SYSTEM, name="Retry me")
    [delivery] = as_owner_a.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/").json()["results"]
    receiver.behaviour.status = 200
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner_a.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/retry/")
    assert response.status_code == 202
    after = as_owner_a.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/").json()
    assert after["status"] == "succeeded"
    assert len(after["attempts"]) == 2
    assert {request.webhook_id for request in receiver.wait_for(2)} == {delivery["webhook_id"]}


def test_replay_delivers_again_everything_since(
    as_owner_a, create, receiver, org_a, in_tenant, django_capture_on_commit_callbacks
):
    endpoint = create().json()
    with in_tenant(org_a), django_capture_on_commit_callbacks(execute=True):
        old = crm.lead_create(actor=SYSTEM, name="Old")
    with in_tenant(org_a):
        OutboxEvent.objects.filter(subject_id=str(old.pk)).update(occurred_at=timezone.now() - timedelta(days=2))
    for name in ("Recent 1", "Recent 2"):
        with in_tenant(org_a), django_capture_on_commit_callbacks(execute=True):
            crm.lead_create(actor=SYSTEM, name=name)
    first_round = [request.webhook_id for request in receiver.wait_for(3)]

    since = (timezone.now() - timedelta(days=1)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner_a.post(f"/api/v1/webhooks/{endpoint['id']}/replay/", {"since": since}, format="json")
    assert response.status_code == 202
    assert response.json() == {"deliveries": 2}
    replayed = [request.webhook_id for request in receiver.wait_for(5)[3:]]
    assert sorted(replayed) == sorted(first_round[1:])
    assert as_owner_a.post(f"/api/v1/webhooks/{endpoint['id']}/replay/", {}, format="json").status_code == 400


def test_replay_is_capped(as_owner_a, create, org_a, in_tenant, settings):
    settings.WEBHOOK_REPLAY_MAX_EVENTS = 1
    endpoint = create().json()
    with in_tenant(org_a):
        for name in ("A", "B"):
            crm.lead_create(actor=SYSTEM, name=name)
        OutboxEvent.objects.update(relayed_at=timezone.now())
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = as_owner_a.post(f"/api/v1/webhooks/{endpoint['id']}/replay/", {"since": since}, format="json")
    assert field_error(response)["code"] == "replay_too_large"


def test_actions_on_a_disabled_endpoint_are_refused(as_owner_a, create):
    endpoint = create(is_active=False).json()
    response = as_owner_a.post(f"/api/v1/webhooks/{endpoint['id']}/ping/")
    assert response.status_code == 409
    assert response.json()["code"] == "webhook_endpoint_disabled"


def test_rotate_secret_returns_a_new_secret_and_keeps_the_old_one_a_day(as_owner_a, create, org_a, in_tenant):
    endpoint = create().json()
    response = as_owner_a.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret/")
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != endpoint["secret"]
    with in_tenant(org_a):
        stored = WebhookEndpoint.objects.get(pk=endpoint["id"])
    assert stored.previous_secret == endpoint["secret"]
    left = stored.previous_secret_expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24)


def test_delete_removes_the_endpoint_and_its_log(as_owner_a, create, org_a, in_tenant):
    endpoint = create().json()
    assert as_owner_a.delete(f"/api/v1/webhooks/{endpoint['id']}/").status_code == 204
    with in_tenant(org_a):
        assert not WebhookEndpoint.objects.exists()


def test_changes_are_audited(as_owner_a, create):
    endpoint = create().json()
    as_owner_a.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret/")
    actions = [entry["action"] for entry in as_owner_a.get("/api/v1/audit-log/").json()["results"]]
    assert "webhook_endpoint.created" in actions
    assert "webhook_endpoint.secret_rotated" in actions


def test_event_feed_filters(as_owner_a, org_a, in_tenant, owner_a):
    with in_tenant(org_a):
        first = crm.lead_create(actor=SYSTEM, name="First")
        second = crm.lead_create(actor=SYSTEM, name="Second")
        crm.lead_qualify(lead=second, actor=SYSTEM)
        OutboxEvent.objects.filter(subject_id=str(first.pk)).update(occurred_at=timezone.now() - timedelta(days=3))

    def feed(query=""):
        return as_owner_a.get(f"/api/v1/events/{query}").json()

    assert feed()["count"] == 3
    assert [e["type"] for e in feed("?type=lead.qualified")["results"]] == ["lead.qualified"]
    assert feed(f"?subject_type=lead&subject_id={second.pk}")["count"] == 2
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert feed(f"?occurred_after={since}")["count"] == 2
    assert feed(f"?occurred_before={since}")["count"] == 1
    newest = feed()["results"][0]
    assert newest["type"] == "lead.qualified"
    assert as_owner_a.get(f"/api/v1/events/{newest['id']}/").json()["payload"]["id"] == second.pk
    assert as_owner_a.get("/api/v1/events/1/").status_code == 404


def test_openapi_carries_the_webhook_components():
    """The hook (registered in SPECTACULAR_SETTINGS) adds valid components; applied here if not registered yet."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    from integrations.schema import add_webhook_components

    schema = SchemaGenerator().get_schema(request=None, public=True)
    if "WebhookEvent" not in schema["components"]["schemas"]:
        schema = add_webhook_components(schema, None, None, True)
    validate_schema(schema)
    components = schema["components"]["schemas"]
    assert components["LeadCreatedData"]["properties"]["estimated_value"]["nullable"] is True
    assert "DealStageChangedData" in components
    assert set(schema["x-webhooks"]) == set(EVENTS)
    assert "/api/v1/webhooks/{id}/rotate-secret/" in schema["paths"]
