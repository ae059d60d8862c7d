import pytest

from billing.models import Override
from billing.services import override_save

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mid_window(monkeypatch):
    """Freeze the clock 30 s into a minute, so a test never straddles a window boundary."""
    import time

    now = (int(time.time()) // 86400) * 86400 + 43230.0
    monkeypatch.setattr("billing.ratelimit.clock", lambda: now)


def _limit(org, name, value):
    override_save(override=Override(organization=org, limit=name, limit_value=value), actor=None)


def test_every_response_carries_rate_limit_headers(as_owner_a):
    response = as_owner_a.get("/api/v1/leads/")
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == response["X-RateLimit-Limit"]
    assert int(response["RateLimit-Remaining"]) >= 0
    assert "w=60" in response["RateLimit-Policy"]
    assert "w=86400" in response["RateLimit-Policy"]


def test_the_request_past_the_limit_is_429(as_owner_a, org_a):
    _limit(org_a, "api_calls_per_minute", 3)
    remaining = [as_owner_a.get("/api/v1/leads/")["RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = as_owner_a.get("/api/v1/leads/")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "throttled"
    retry_after = int(response["Retry-After"])
    assert retry_after == 30
    assert body["retry_after"] == retry_after
    assert response["RateLimit-Remaining"] == "0"
    assert response["X-RateLimit-Limit"] == "3"


def test_limits_are_per_user(org_a, as_owner_a, member):
    _limit(org_a, "api_calls_per_minute", 2)
    _user, other = member(org_a, "viewer")
    for _ in range(2):
        as_owner_a.get("/api/v1/leads/")
    assert as_owner_a.get("/api/v1/leads/").status_code == 429
    assert other.get("/api/v1/leads/").status_code == 200


def test_daily_limit(as_owner_a, org_a):
    _limit(org_a, "api_calls_per_day", 1)
    assert as_owner_a.get("/api/v1/leads/").status_code == 200
    response = as_owner_a.get("/api/v1/leads/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 86400 - 43230


def test_redis_down_keeps_serving(as_owner_a, org_a, settings, caplog):
    as_owner_a.get("/api/v1/leads/")  # warm what can be warmed
    settings.CACHES = {
        alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"} for alias, config in settings.CACHES.items()
    }
    response = as_owner_a.get("/api/v1/leads/")
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response
    assert "unreachable (127.0.0.1:1)" in caplog.text
