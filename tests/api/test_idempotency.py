import pytest

from crm.models import Lead
from integrations.models import OutboxEvent

pytestmark = pytest.mark.django_db


def test_same_key_same_body_replays_the_first_response(as_owner_a, org_a, in_tenant):
    first = as_owner_a.post("/api/v1/leads/", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = as_owner_a.post("/api/v1/leads/", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    with in_tenant(org_a):
        assert Lead.objects.filter(name="Once").count() == 1
        assert OutboxEvent.objects.filter(type="lead.created").count() == 1


def test_same_key_other_body_is_422(as_owner_a):
    as_owner_a.post("/api/v1/leads/", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    response = as_owner_a.post("/api/v1/leads/", {"name": "B"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


def test_keys_are_per_caller(as_owner_a, org_a, member, in_tenant):
    _user, other = member(org_a, "manager")
    as_owner_a.post("/api/v1/leads/", {"name": "Mine"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = other.post("/api/v1/leads/", {"name": "Mine"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    with in_tenant(org_a):
        assert Lead.objects.filter(name="Mine").count() == 2


def test_actions_are_idempotent_too(as_owner_a, org_a, in_tenant):
    lead_id = as_owner_a.post("/api/v1/leads/", {"name": "Q"}, format="json").json()["id"]
    url = f"/api/v1/leads/{lead_id}/disqualify/"
    first = as_owner_a.post(url, {"reason": "budget"}, format="json", HTTP_IDEMPOTENCY_KEY="dq")
    second = as_owner_a.post(url, {"reason": "budget"}, format="json", HTTP_IDEMPOTENCY_KEY="dq")
    assert first.status_code == second.status_code == 200
    with in_tenant(org_a):
        assert OutboxEvent.objects.filter(type="lead.disqualified").count() == 1


def test_failed_validation_is_replayed_as_well(as_owner_a):
    first = as_owner_a.post("/api/v1/leads/", {}, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    second = as_owner_a.post("/api/v1/leads/", {}, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    assert first.status_code == second.status_code == 400
    assert second.json() == first.json()


def test_invalid_key_is_400(as_owner_a):
    response = as_owner_a.post("/api/v1/leads/", {"name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 300)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


def test_without_a_key_each_post_creates(as_owner_a, org_a, in_tenant):
    as_owner_a.post("/api/v1/leads/", {"name": "Twice"}, format="json")
    as_owner_a.post("/api/v1/leads/", {"name": "Twice"}, format="json")
    with in_tenant(org_a):
        assert Lead.objects.filter(name="Twice").count() == 2


def test_redis_unreachable_is_503_not_a_false_reuse(as_owner_a, org_a, in_tenant, settings):
    """Without Redis the key cannot be checked: the request is not processed (503, retry later with the same
    key), never refused as 422 ``idempotency_key_reused``. Writes without a key are served."""
    reachable = settings.CACHES
    settings.CACHES = {alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"} for alias, config in reachable.items()}
    for _ in range(3):
        response = as_owner_a.post("/api/v1/leads/", {"name": "Keyed"}, format="json", HTTP_IDEMPOTENCY_KEY="down")
        assert response.status_code == 503
        assert response.json()["code"] == "idempotency_unavailable"
        assert response["Retry-After"] == str(int(settings.REDIS_BACKOFF_SECONDS))
    assert as_owner_a.post("/api/v1/leads/", {"name": "Unkeyed"}, format="json").status_code == 201
    with in_tenant(org_a):
        assert not Lead.objects.filter(name="Keyed").exists()

    settings.CACHES = reachable  # Redis is back: the retry with the same key runs once
    first = as_owner_a.post("/api/v1/leads/", {"name": "Keyed"}, format="json", HTTP_IDEMPOTENCY_KEY="down")
    again = as_owner_a.post("/api/v1/leads/", {"name": "Keyed"}, format="json", HTTP_IDEMPOTENCY_KEY="down")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    with in_tenant(org_a):
        assert Lead.objects.filter(name="Keyed").count() == 1
