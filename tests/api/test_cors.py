"""Browser clients on another origin: the preflight lets the API's request headers through, and every response
header the API sends is exposed to scripts (``config/api/headers.py``), none that it does not send."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings

from billing.models import Override
from billing.services import override_save
from config.api import headers

from ..conftest import client_for
from ..crm.fixtures.transfer import csv_bytes, streamed, upload

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
ORIGIN = "http://localhost:3000"
# A script reads these without CORS naming them.
SAFELISTED = {
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
}
# Headers for the browser and caches, not for scripts: never exposed.
FOR_THE_BROWSER = {
    "vary",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
}


def _lower(names) -> set[str]:
    return {name.lower() for name in names}


def _exposed(response) -> set[str]:
    return {name.strip().lower() for name in response["Access-Control-Expose-Headers"].split(",")}


def _check_exposure(response) -> set[str]:
    """Every header of ``response`` a script needs is exposed; returns the response's header names."""
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    sent = {name.lower() for name in response.headers if not name.lower().startswith("access-control-")}
    hidden = sent - SAFELISTED - FOR_THE_BROWSER - _exposed(response)
    assert not hidden, f"{response.status_code} answer sends headers CORS hides: {sorted(hidden)}"
    return sent


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.IMPORT_WORK_DIR = str(tmp_path / "work")


def test_the_exposed_list_is_the_api_header_list():
    assert _lower(settings.CORS_EXPOSE_HEADERS) == _lower(headers.EXPOSED)


def test_a_preflight_lets_the_api_request_headers_through(api):
    response = api.options(
        "/api/v1/leads/",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key, x-organization, x-api-key",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed = {name.strip() for name in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-organization", "x-api-key"} <= allowed


def test_every_header_the_api_sends_is_exposed(org_a, owner_a, as_owner_a, django_capture_on_commit_callbacks):
    """Answers that carry each header of the list, through the test client as a browser sends them."""
    client = client_for(owner_a, org_a)
    client.credentials(**client._credentials, HTTP_ORIGIN=ORIGIN)
    seen: set[str] = set()

    seen |= _check_exposure(client.get("/api/v1/leads/"))  # rate limits, Allow
    first = client.post("/api/v1/leads/", {"name": "Ada"}, HTTP_IDEMPOTENCY_KEY="cors-1")
    replay = client.post("/api/v1/leads/", {"name": "Ada"}, HTTP_IDEMPOTENCY_KEY="cors-1")
    assert (first.status_code, replay["Idempotent-Replayed"]) == (201, "true")
    seen |= _check_exposure(first) | _check_exposure(replay)
    export = client.get("/api/v1/exports/leads/?format=csv")
    streamed(export)
    seen |= _check_exposure(export)  # Content-Disposition
    with django_capture_on_commit_callbacks(execute=True):
        queued = upload(client, csv_bytes([["first_name", "email"], ["Ada", "ada@example.test"]]))
    assert queued.status_code == 202
    seen |= _check_exposure(queued)  # Location
    seen |= _check_exposure(client.delete("/api/v1/leads/"))  # 405
    anonymous = client_for(None, org_a)
    anonymous.credentials(HTTP_ORIGIN=ORIGIN, HTTP_X_ORGANIZATION=org_a.slug)
    seen |= _check_exposure(anonymous.get("/api/v1/leads/"))  # 401: WWW-Authenticate
    override_save(override=Override(organization=org_a, limit="api_calls_per_minute", limit_value=1), actor=None)
    client.get("/api/v1/leads/")
    throttled = client.get("/api/v1/leads/")
    assert throttled.status_code == 429
    seen |= _check_exposure(throttled)  # Retry-After

    # Each exposed header is one the API really sends: the list says nothing that is not so.
    assert _lower(headers.EXPOSED) <= seen


def test_a_cross_origin_list_response_exposes_the_rate_limit_headers(org_a, owner_a):
    client = client_for(owner_a, org_a)
    response = client.get("/api/v1/leads/", HTTP_ORIGIN=ORIGIN)
    exposed = _exposed(response)
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "X-RateLimit-Reset"):
        assert response.has_header(name)
        assert name.lower() in exposed
    assert "ratelimit" not in exposed  # no header of that name exists


# Header-like names in the code that are not response headers of the API.
NOT_RESPONSE_HEADERS = {
    "user-agent",  # integrations/delivery.py: webhook requests the API sends out
    # crm/campaigns/channels.py: headers of the campaign e-mails the product sends
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "x-accel-buffering",  # assistant/api/views.py: tells the reverse proxy (nginx) not to buffer a stream; it drops it
}
_HEADER_NAME = re.compile(r"^(?:[A-Z][A-Za-z0-9]*|WWW)(?:-[A-Z][A-Za-z0-9]*)+$")


def _header_literals() -> dict[str, str]:
    """Header-shaped strings used as dict keys or subscripts (``response["X-Foo"] = ...``, ``{"X-Foo": ...}``) in
    the product's code, with where they are."""
    found: dict[str, str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".venv/", "tests/", "bench/")) or "/migrations/" in relative:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            if isinstance(node, ast.Dict):
                candidates = node.keys
            elif isinstance(node, ast.Subscript):
                candidates = [node.slice]
            else:
                continue
            for candidate in candidates:
                if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str):
                    if _HEADER_NAME.match(candidate.value):
                        found.setdefault(candidate.value.lower(), f"{relative}:{candidate.lineno}")
    return found


def test_a_header_set_in_the_code_is_exposed():
    """A new ``response["X-Something"] = ...`` fails here until config/api/headers.py lists it."""
    literals = _header_literals()
    assert "ratelimit-limit" in literals  # the scan sees the rate-limit headers
    missing = {
        name: where
        for name, where in literals.items()
        if name not in _lower(headers.EXPOSED) | SAFELISTED | NOT_RESPONSE_HEADERS
    }
    assert not missing, f"response headers not in config/api/headers.py: {missing}"
