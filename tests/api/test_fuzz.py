"""The API fuzzed from its own OpenAPI document: schemathesis generates requests for every operation, valid and
invalid, and every answer must be no 5xx, a documented status, a documented content type and a body that
conforms to the documented schema.

- The document is the one ``/api/schema/`` serves (a test below holds them equal), generated once per process.
- Requests go through Django's full stack in process (middleware, tenant resolution, authentication), with the
  test client's handler, inside the test's transaction: nothing is committed, nothing leaves the machine.
- Callers: an Owner (every operation), a Viewer (every GET: writes are refused before their input is read, which
  tests/api/test_contract.py covers for every routed action) and anonymous callers (public operations fully,
  the others once each). They work in an organization of their own, seeded with records of every kind; path ids
  mostly name those records, so detail and action handlers run, not only the 404.
- Deterministic (derandomized, no example database) and bounded: few examples per operation, one pytest item
  per operation and caller, so pytest-xdist spreads them over the workers.

Not checked: that every schema-valid request is accepted and every schema-invalid one refused
(schemathesis' ``positive_data_acceptance`` / ``negative_data_rejection``): business rules (a wrong password, an
id outside your scope) refuse valid-looking input, and DRF reads ``0`` as ``false`` and numbers as text, by design.
"""

from __future__ import annotations

import zlib

import pytest
import schemathesis
from django.test import Client
from django.test.client import ClientHandler
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings

from ..conftest import client_for
from ..factories import make_member, make_organization, make_user

DOCUMENT = SchemaGenerator().get_schema(request=None, public=True)
NOT_CHECKED = ["positive_data_acceptance", "negative_data_rejection"]
SEEDED: dict[str, list] = {}  # collection → ids of the seeded records, filled once per process


def _app():
    """Django's full stack as a WSGI application, the test client's way (no connection closed mid-test)."""
    handler = ClientHandler(enforce_csrf_checks=False)

    def app(environ, start_response):
        response = handler(environ)
        headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return response

    return app


def _schema(*, coverage: bool = True):
    loaded = schemathesis.openapi.from_dict(DOCUMENT)
    loaded.app = _app()
    loaded.config.generation.update(deterministic=True, database="none", with_security_parameters=False)
    loaded.config.checks.update(excluded_check_names=NOT_CHECKED)
    if not coverage:
        loaded.config.phases.update(phases=["examples", "fuzzing"])

    @loaded.hook
    def map_path_parameters(context, path_parameters):
        """Most ids name a seeded record of the collection before them in the path; some stay as drawn."""
        segments = context.operation.path.strip("/").split("/")
        for index, segment in enumerate(segments):
            name = segment.strip("{}")
            if segment.startswith("{") and name in path_parameters and index:
                pool = SEEDED.get(segments[index - 1])
                drawn = path_parameters[name]
                pick = zlib.crc32(str(drawn).encode())
                if pool and pick % 5:
                    path_parameters[name] = pool[pick % len(pool)]
        return path_parameters

    return loaded


def _public(ctx) -> bool:
    return not ctx.operation.definition.raw.get("security")


# Reads get schemathesis' coverage phase too (every parameter's boundaries and wrong types, deterministically):
# that is where filters break. Writes are fuzzed only, which finds as much for a quarter of the requests.
owner_reads = _schema().include(method="GET")
owner_writes = _schema(coverage=False).exclude(method="GET")
viewer_schema = _schema(coverage=False).include(method="GET")
public_schema = _schema().include(_public)
guarded_schema = _schema(coverage=False).exclude(_public)

FUZZ = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(HealthCheck),
    "phases": [Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
}


# --- the world the callers work in ---------------------------------------------------------------------------


def _seed(client) -> dict[str, list]:
    """Records of every kind, created over the API as an Owner would."""

    def post(url, body):
        response = client.post(url, body, format="json")
        assert response.status_code in (200, 201, 202), (url, response.content)
        return response.json()

    for record_type, key, kind, extra in [
        ("lead", "budget", "number", {}),
        ("contact", "tier", "choice", {"choices": ["gold", "silver"]}),
        ("company", "renewal", "date", {}),
        ("deal", "vip", "boolean", {}),
        ("lead", "note", "text", {}),
    ]:
        post("/api/v1/custom-fields/", {"record_type": record_type, "key": key, "label": key, "type": kind, **extra})
    post("/api/v1/tags/", {"name": "vip"})
    company = post("/api/v1/companies/", {"name": "Acme", "domain": "acme.test", "tags": ["vip"]})
    post("/api/v1/companies/", {"name": "Globex", "custom_fields": {"renewal": "2027-01-31"}})
    contact = post("/api/v1/contacts/", {"first_name": "Ada", "email": "ada@acme.test", "company": company["id"]})
    post("/api/v1/contacts/", {"last_name": "Byron", "custom_fields": {"tier": "gold"}})
    post("/api/v1/leads/", {"name": "Open lead", "score": 40, "custom_fields": {"budget": 1200.5}})
    converted = post("/api/v1/leads/", {"name": "Won lead", "email": "won@initech.test", "company_name": "Initech"})
    post(f"/api/v1/leads/{converted['id']}/convert/", {"create_deal": True})
    pipeline = client.get("/api/v1/pipelines/").json()["results"][0]
    deal = post("/api/v1/deals/", {"title": "Big deal", "amount": "5000.00", "contact": contact["id"]})
    post(f"/api/v1/deals/{deal['id']}/move-stage/", {"stage": pipeline["stages"][1]["id"]})
    lost = post("/api/v1/deals/", {"title": "Lost deal"})
    post(f"/api/v1/deals/{lost['id']}/mark-lost/", {"reason": "budget"})
    post("/api/v1/activities/", {"kind": "task", "subject": "Call back", "deal": deal["id"], "due_at": "2030-01-01"})
    post("/api/v1/activities/", {"kind": "note", "subject": "Met", "contact": contact["id"]})
    post("/api/v1/roles/", {"name": "Closer", "grants": {"crm.lead.view": "all"}})
    post("/api/v1/invitations/", {"email": "invitee@example.test", "role": _role_id(client, "sales_rep")})
    post("/api/v1/api-keys/", {"name": "Sync", "scopes": {"crm.lead.view": "all"}})
    post("/api/v1/webhooks/", {"url": "https://93.184.216.34/hooks", "event_types": ["deal.won"]})
    segment = post("/api/v1/segments/", {"name": "List", "kind": "static", "contacts": [contact["id"]]})
    post("/api/v1/segments/", {"name": "Active", "kind": "dynamic", "filters": {"status": ["active"]}})
    post("/api/v1/campaigns/", {"name": "News", "channel": "email", "segment": segment["id"], "subject": "Hi",
                                "body": "Hello {{ contact.first_name }}"})  # fmt: skip
    post("/api/v1/consents/", {"contact": contact["id"], "channel": "email", "status": "opted_in", "proof": "form"})

    def ids(url, key="id"):
        return [item[key] for item in client.get(url, {"page_size": 100}).json()["results"]]

    collections = [
        "leads", "contacts", "companies", "activities", "tags", "custom-fields", "deals", "pipelines",
        "stages", "members", "roles", "invitations", "api-keys", "webhooks", "events", "imports", "segments",
        "campaigns", "consents",
    ]  # fmt: skip
    return {name: ids(f"/api/v1/{name}/") for name in collections}


def _role_id(client, key: str) -> int:
    return next(role["id"] for role in client.get("/api/v1/roles/").json()["results"] if role["key"] == key)


@pytest.fixture(scope="session")
def fuzz_world(django_db_setup, django_db_blocker, _test_services):
    """An organization of its own, with an Owner, a Viewer and records, committed once per process."""
    with django_db_blocker.unblock():
        organization = make_organization(name="Fuzz Org", slug="org-fuzz")
        owner, viewer = make_user(), make_user()
        make_member(user=owner, organization=organization, role="owner")
        make_member(user=viewer, organization=organization, role="viewer")
        SEEDED.update(_seed(client_for(owner, organization)))
    return {"organization": organization, "owner": owner, "viewer": viewer}


def _headers(user, organization) -> dict[str, str]:
    from identity.services import tokens_for

    return {"Authorization": f"Bearer {tokens_for(user=user)['access']}", "X-Organization": organization.slug}


@pytest.fixture
def owner_headers(fuzz_world, db):
    return _headers(fuzz_world["owner"], fuzz_world["organization"])


@pytest.fixture
def viewer_headers(fuzz_world, db):
    return _headers(fuzz_world["viewer"], fuzz_world["organization"])


@pytest.fixture
def anonymous_headers(fuzz_world, db):
    return {"X-Organization": fuzz_world["organization"].slug}


# --- the fuzz ------------------------------------------------------------------------------------------------


@owner_reads.parametrize()
@settings(max_examples=5, **FUZZ)
def test_owner_reads(case, owner_headers):
    case.call_and_validate(headers=owner_headers)


@owner_writes.parametrize()
@settings(max_examples=10, **FUZZ)
def test_owner_writes(case, owner_headers):
    case.call_and_validate(headers=owner_headers)


@viewer_schema.parametrize()
@settings(max_examples=6, **FUZZ)
def test_as_viewer(case, viewer_headers):
    case.call_and_validate(headers=viewer_headers)


@public_schema.parametrize()
@settings(max_examples=10, **FUZZ)
def test_anonymous_public(case, anonymous_headers):
    case.call_and_validate(headers=anonymous_headers)


@guarded_schema.parametrize()
@settings(max_examples=1, **FUZZ)
def test_anonymous_elsewhere(case, anonymous_headers):
    case.call_and_validate(headers=anonymous_headers)


# --- the fuzz is honest ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_fuzzed_document_is_the_served_one():
    served = Client().get("/api/schema/", {"format": "json"})
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_every_operation_is_fuzzed():
    operations = {(method, path) for path, item in DOCUMENT["paths"].items() for method in item}
    assert len(operations) > 130
    fuzzed = [*owner_reads.get_all_operations(), *owner_writes.get_all_operations()]
    assert len(fuzzed) == len(operations)


@pytest.mark.django_db
def test_the_seed_reaches_every_collection(fuzz_world):
    missing = [name for name, ids in SEEDED.items() if not ids and name != "imports"]
    assert not missing
