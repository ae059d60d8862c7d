from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from billing.services import subscription_change_plan
from crm.services import lead_create
from identity import apikeys
from identity.models import ApiKey
from rbac.models import Role
from rbac.services import membership_create
from tests.factories import SYSTEM

from ..conftest import client_for
from ..factories import make_user

pytestmark = pytest.mark.django_db


def key_client(secret, header="authorization", **extra):
    client = APIClient()
    if header == "authorization":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", **extra)
    else:
        client.credentials(HTTP_X_API_KEY=secret, **extra)
    return client


@pytest.fixture
def make_key(as_owner_a):
    def make(scopes=None, **fields):
        response = as_owner_a.post(
            "/api/v1/api-keys/",
            {"name": "Zapier", "scopes": scopes or {"crm.lead.view": "all", "crm.lead.create": "all"}, **fields},
            format="json",
        )
        assert response.status_code == 201, response.content
        return response.json()

    return make


def test_the_secret_is_shown_once_and_only_its_hash_is_stored(as_owner_a, make_key):
    body = make_key()
    secret = body["secret"]
    assert secret.startswith("crmk_")
    assert len(secret) == apikeys.KEY_LENGTH
    assert apikeys.well_formed(secret)
    assert body["prefix"] == secret[:12]
    assert body["last_four"] == secret[-4:]
    stored = ApiKey.objects.get(pk=body["id"])
    assert secret not in (stored.secret_hash, stored.prefix)
    listed = as_owner_a.get("/api/v1/api-keys/").json()["results"]
    assert "secret" not in listed[0]
    assert secret not in str(listed)
    creator = stored.created_by  # a person reads {id, email, name} wherever it is referred to
    assert listed[0]["created_by"] == {"id": creator.pk, "email": creator.email, "name": creator.full_name}


def test_checksum_catches_a_typo_before_any_query(make_key):
    secret = make_key()["secret"]
    typo = secret[:-7] + ("A" if secret[-7] != "A" else "B") + secret[-6:]
    assert not apikeys.well_formed(typo)
    with CaptureQueriesContext(connection) as queries:
        assert apikeys.key_for(typo) is None
    assert len(queries) == 0


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_the_key_alone_selects_its_organization(org_a, owner_a, make_key, in_tenant, header):
    with in_tenant(org_a):
        lead_create(actor=SYSTEM, name="Visible", owner_id=owner_a.pk)
    client = key_client(make_key()["secret"], header=header)
    response = client.get("/api/v1/leads/")
    assert response.status_code == 200
    assert [lead["name"] for lead in response.json()["results"]] == ["Visible"]
    created = client.post("/api/v1/leads/", {"name": "By key"}, format="json")
    assert created.status_code == 201
    assert created.json()["owner"]["id"] == owner_a.pk


def test_a_key_of_a_reaches_nothing_of_b(org_b, owner_b, make_key, in_tenant):
    with in_tenant(org_b):
        b_lead = lead_create(actor=SYSTEM, name="B secret", owner_id=owner_b.pk)
    secret = make_key()["secret"]
    assert key_client(secret, HTTP_X_ORGANIZATION=org_b.slug).get("/api/v1/leads/").status_code == 404
    assert key_client(secret).get(f"/api/v1/leads/{b_lead.pk}/").status_code == 404


def test_revoked_key_is_401_on_the_next_request(as_owner_a, make_key):
    body = make_key()
    client = key_client(body["secret"])
    assert client.get("/api/v1/leads/").status_code == 200
    assert as_owner_a.delete(f"/api/v1/api-keys/{body['id']}/").status_code == 204
    response = client.get("/api/v1/leads/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


def test_expired_key_is_401(make_key):
    body = make_key(expires_at=(timezone.now() + timedelta(hours=1)).isoformat())
    ApiKey.objects.filter(pk=body["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    from ..conftest import clear_run_cache

    clear_run_cache()
    assert key_client(body["secret"]).get("/api/v1/leads/").status_code == 401


def test_unknown_key_is_401(api):
    response = key_client(apikeys.generate()).get("/api/v1/leads/")
    assert response.status_code == 401


def test_key_without_the_scope_is_403(make_key):
    client = key_client(make_key({"crm.lead.view": "all"})["secret"])
    response = client.post("/api/v1/leads/", {"name": "nope"}, format="json")
    assert response.status_code == 403
    assert response.json()["permission"] == "crm.lead.create"


def test_cannot_create_a_key_beyond_what_you_hold(org_a):
    role = Role.objects.create(
        organization=org_a,
        key="integrator",
        name="Integrator",
        grants={"integrations.apikey.manage": "all", "crm.lead.view": "own"},
    )
    user = make_user()
    membership_create(user=user, organization=org_a, role=role)
    client = client_for(user, org_a)
    too_much = client.post("/api/v1/api-keys/", {"name": "x", "scopes": {"crm.lead.view": "all"}}, format="json")
    assert too_much.status_code == 403
    assert too_much.json()["code"] == "grant_exceeds_own"
    fine = client.post("/api/v1/api-keys/", {"name": "x", "scopes": {"crm.lead.view": "own"}}, format="json")
    assert fine.status_code == 201


def test_key_shrinks_with_its_creator(org_a, owner_a, in_tenant):
    manager = make_user()
    membership = membership_create(user=manager, organization=org_a, role="manager")
    with in_tenant(org_a):
        lead_create(actor=SYSTEM, name="Someone else's", owner_id=owner_a.pk)
    response = client_for(manager, org_a).post(
        "/api/v1/api-keys/", {"name": "m", "scopes": {"crm.lead.view": "all"}}, format="json"
    )
    assert response.status_code == 403  # managers do not manage keys by default
    from rbac.services import membership_change_role

    membership_change_role(membership=membership, role=Role.objects.get(key="admin", organization=None), actor=None)
    secret = (
        client_for(manager, org_a)
        .post("/api/v1/api-keys/", {"name": "m", "scopes": {"crm.lead.view": "all"}}, format="json")
        .json()["secret"]
    )
    assert key_client(secret).get("/api/v1/leads/").json()["count"] == 1
    membership_change_role(membership=membership, role=Role.objects.get(key="sales_rep", organization=None), actor=None)
    assert key_client(secret).get("/api/v1/leads/").json()["count"] == 0  # now capped to the creator's own


def test_rotation_keeps_the_old_secret_for_the_grace_period(as_owner_a, make_key):
    body = make_key()
    rotated = as_owner_a.post(f"/api/v1/api-keys/{body['id']}/rotate/")
    assert rotated.status_code == 201
    new_secret = rotated.json()["secret"]
    assert new_secret != body["secret"]
    assert key_client(new_secret).get("/api/v1/leads/").status_code == 200
    assert key_client(body["secret"]).get("/api/v1/leads/").status_code == 200
    old = ApiKey.objects.get(pk=body["id"])
    assert timedelta(hours=23) < old.expires_at - timezone.now() <= timedelta(hours=24)
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    from ..conftest import clear_run_cache

    clear_run_cache()
    assert key_client(body["secret"]).get("/api/v1/leads/").status_code == 401
    assert key_client(new_secret).get("/api/v1/leads/").status_code == 200


def test_last_used_is_recorded_without_a_write_per_request(make_key):
    body = make_key()
    client = key_client(body["secret"])
    client.get("/api/v1/leads/")
    first = ApiKey.objects.get(pk=body["id"]).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/v1/leads/")
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert ApiKey.objects.get(pk=body["id"]).last_used_at == first


def test_keys_cannot_use_personal_endpoints(make_key):
    client = key_client(make_key()["secret"])
    assert client.get("/api/v1/organizations/").status_code == 403


def test_keys_stop_when_the_plan_loses_the_feature(org_a, make_key):
    client = key_client(make_key()["secret"])
    subscription_change_plan(organization=org_a, plan_code="free", actor=None)
    response = client.get("/api/v1/leads/")
    assert response.status_code == 403
    assert response.json()["code"] == "feature_not_in_plan"


def test_key_has_its_own_rate_limit_counter(org_a, make_key, as_owner_a):
    from billing.models import Override
    from billing.services import override_save

    override_save(override=Override(organization=org_a, limit="api_calls_per_minute", limit_value=1000), actor=None)
    client = key_client(make_key()["secret"])
    user_remaining = int(as_owner_a.get("/api/v1/leads/")["RateLimit-Remaining"])
    key_remaining = int(client.get("/api/v1/leads/")["RateLimit-Remaining"])
    assert key_remaining == 999
    assert user_remaining >= 998


@pytest.mark.parametrize(
    ("how", "reason"),
    [("remove", "membership.removed"), ("deactivate", "membership.deactivated"), ("leave", "membership.left")],
)
def test_a_members_keys_are_revoked_when_they_go_and_stay_so_when_they_return(
    as_owner_a, org_a, owner_a, member, how, reason
):
    """Removing, deactivating or the member leaving revokes the keys they created (audited); coming back, re-invited
    or reactivated, with another role, does not bring them back."""
    from rbac.models import AuditEntry, Membership

    user, client = member(org_a, "admin")
    created = client.post("/api/v1/api-keys/", {"name": "Mine", "scopes": {"crm.lead.view": "all"}}, format="json")
    assert created.status_code == 201, created.content
    key = key_client(created.json()["secret"])
    assert key.get("/api/v1/leads/").status_code == 200
    membership_id = Membership.objects.get(organization=org_a, user=user).pk
    response = {
        "remove": lambda: as_owner_a.delete(f"/api/v1/members/{membership_id}/"),
        "deactivate": lambda: as_owner_a.post(f"/api/v1/members/{membership_id}/deactivate/"),
        "leave": lambda: client.post("/api/v1/members/leave/"),
    }[how]()
    assert response.status_code in (200, 204), response.content

    assert ApiKey.objects.get(pk=created.json()["id"]).revoked_at is not None
    entry = AuditEntry.objects.get(organization=org_a, action="api_key.revoked", target_id=created.json()["id"])
    assert (entry.after["reason"], entry.actor_label) == (reason, user.email if how == "leave" else owner_a.email)
    response = key.get("/api/v1/leads/")
    assert (response.status_code, response.json()["code"]) == (401, "invalid_api_key")

    if how == "deactivate":
        assert as_owner_a.post(f"/api/v1/members/{membership_id}/activate/").status_code == 200
    else:  # re-invited: the invitation's acceptance makes the membership again
        membership_create(user=user, organization=org_a, role="manager", actor=user)
    assert client.get("/api/v1/organizations/current/").status_code == 200
    assert key.get("/api/v1/leads/").status_code == 401


def test_keys_left_by_an_earlier_membership_stay_dead_when_the_person_returns(org_a, member):
    """A key of someone whose membership ended before keys were revoked with it does not come back either."""
    from rbac.models import Membership

    user, client = member(org_a, "admin")
    secret = client.post("/api/v1/api-keys/", {"name": "Old", "scopes": {"crm.lead.view": "all"}}).json()["secret"]
    Membership.objects.filter(organization=org_a, user=user).delete()  # as the removal once did, keys untouched
    membership_create(user=user, organization=org_a, role="viewer")
    response = key_client(secret).get("/api/v1/leads/")
    assert (response.status_code, response.json()["code"]) == (401, "invalid_api_key")
