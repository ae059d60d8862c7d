"""Sign-in, brute-force lockout, refresh rotation, logout and the signed-in person's profile."""

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from identity import lockout
from identity.models import User

from ..conftest import client_for
from ..factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
LOGOUT = "/api/v1/auth/logout/"
ME = "/api/v1/auth/me/"


@pytest.fixture
def user(unique_email):
    return make_user(email=unique_email("signin"))


def sign_in(client, email, password=DEFAULT_PASSWORD, **extra):
    return client.post(TOKEN, {"email": email, "password": password}, format="json", **extra)


def _lock_key(email: str) -> str:
    key, _limit = lockout._counters(email=email, ip="")[0]
    return key


def test_sign_in_answers_a_session(api, user, owner_a, org_a):
    response = sign_in(api, user.email.upper())
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == user.pk
    assert body["organizations"] == []
    assert {"access", "refresh"} <= body.keys()
    user.refresh_from_db()
    assert user.last_login is not None

    owner = sign_in(api, owner_a.email).json()
    assert [org["slug"] for org in owner["organizations"]] == [org_a.slug]


@pytest.mark.parametrize(("email", "password"), [("known", "Wrong-Password-123"), ("unknown", DEFAULT_PASSWORD)])
def test_wrong_credentials_are_401_and_say_nothing_about_the_account(api, user, email, password):
    address = user.email if email == "known" else "nobody-" + user.email
    response = sign_in(api, address, password)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "invalid_credentials"
    assert body["detail"] == "E-mail or password is incorrect."


def test_inactive_user_cannot_sign_in(api, user):
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert sign_in(api, user.email).json()["code"] == "invalid_credentials"


def test_lockout_after_repeated_failures_and_its_expiry(api, user, settings):
    settings.AUTH_LOCKOUT_MAX_FAILURES = 3
    settings.AUTH_LOCKOUT_WINDOW_SECONDS = 600
    assert [sign_in(api, user.email, "Wrong-Password-1").status_code for _ in range(2)] == [401, 401]
    locking = sign_in(api, user.email, "Wrong-Password-1")
    assert locking.status_code == 429  # the failure that reaches the limit says so

    response = sign_in(api, user.email)  # even the right password is refused while locked
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "account_locked"
    retry_after = int(response["Retry-After"])
    assert 590 <= retry_after <= 600
    assert body["retry_after"] == retry_after

    # Other accounts are not affected.
    other = make_user()
    assert sign_in(api, other.email).status_code == 200

    # The lock is in Redis with the window as its TTL: let it run out.
    client = caches["control"]._cache.get_client(write=True)
    key = _lock_key(user.email)
    assert 0 < client.ttl(key) <= 600
    client.pexpire(key, 1)
    import time

    time.sleep(0.01)
    assert sign_in(api, user.email).status_code == 200


def test_unknown_email_is_locked_exactly_like_a_known_one(api, settings, unique_email):
    settings.AUTH_LOCKOUT_MAX_FAILURES = 2
    email = unique_email("ghost")
    assert sign_in(api, email, "Wrong-Password-1").status_code == 401
    response = sign_in(api, email, "Wrong-Password-1")
    assert response.status_code == 429
    assert response.json()["code"] == "account_locked"
    assert "Retry-After" in response


def test_success_resets_the_failure_count(api, user, settings):
    settings.AUTH_LOCKOUT_MAX_FAILURES = 3
    for _ in range(2):
        assert sign_in(api, user.email, "Wrong-Password-1").status_code == 401
    assert sign_in(api, user.email).status_code == 200
    for _ in range(2):
        assert sign_in(api, user.email, "Wrong-Password-1").status_code == 401
    assert sign_in(api, user.email).status_code == 200


def test_lockout_counts_across_processes(api, user, settings):
    """The counter lives in Redis: a failure recorded by another process (another cache client) counts."""
    settings.AUTH_LOCKOUT_MAX_FAILURES = 2
    assert sign_in(api, user.email, "Wrong-Password-1").status_code == 401
    import redis

    other_process = redis.Redis.from_url(caches["control"]._cache._servers[0])
    assert int(other_process.get(_lock_key(user.email))) == 1
    other_process.incr(_lock_key(user.email))
    assert sign_in(api, user.email).status_code == 429


def test_many_failures_from_one_ip_lock_that_ip(api, settings, unique_email):
    settings.AUTH_LOCKOUT_IP_MAX_FAILURES = 3
    for index in range(2):
        assert sign_in(api, unique_email(f"spray{index}"), "Wrong-Password-1").status_code == 401
    assert sign_in(api, unique_email("spray"), "Wrong-Password-1").status_code == 429
    victim = make_user()
    assert sign_in(api, victim.email).status_code == 429  # from the same address
    elsewhere = APIClient(REMOTE_ADDR="203.0.113.9")
    assert sign_in(elsewhere, victim.email).status_code == 200


def test_forwarded_for_is_ignored_without_trusted_proxies(api, settings, unique_email):
    settings.AUTH_LOCKOUT_IP_MAX_FAILURES = 2
    for index in range(2):
        sign_in(api, unique_email(f"spoof{index}"), "Wrong-Password-1", HTTP_X_FORWARDED_FOR=f"198.51.100.{index}")
    victim = make_user()
    response = sign_in(api, victim.email, HTTP_X_FORWARDED_FOR="198.51.100.200")
    assert response.status_code == 429  # a made-up X-Forwarded-For does not escape the per-IP counter


def test_redis_down_signs_in_without_lockout(api, user, settings, caplog):
    settings.CACHES = {
        alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"} for alias, config in settings.CACHES.items()
    }
    assert sign_in(api, user.email, "Wrong-Password-1").status_code == 401
    assert sign_in(api, user.email).status_code == 200
    assert "unreachable (127.0.0.1:1)" in caplog.text


def test_refresh_rotates_and_a_reused_refresh_token_is_401(api, user):
    first = sign_in(api, user.email).json()["refresh"]
    response = api.post(REFRESH, {"refresh": first}, format="json")
    assert response.status_code == 200
    second = response.json()["refresh"]
    assert second != first
    assert response.json()["access"]

    reused = api.post(REFRESH, {"refresh": first}, format="json")
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_not_valid"
    assert api.post(REFRESH, {"refresh": second}, format="json").status_code == 200


def test_garbage_refresh_token_is_401(api):
    response = api.post(REFRESH, {"refresh": "not-a-token"}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_refresh_token_of_a_deleted_user_is_401(api, user):
    refresh = sign_in(api, user.email).json()["refresh"]
    User.objects.filter(pk=user.pk).delete()
    response = api.post(REFRESH, {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_refresh_token_after_logout_is_401(api, user):
    refresh = sign_in(api, user.email).json()["refresh"]
    assert api.post(LOGOUT, {"refresh": refresh}, format="json").status_code == 204
    response = api.post(REFRESH, {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
    assert api.post(LOGOUT, {"refresh": refresh}, format="json").status_code == 401


def test_me_requires_a_session(api):
    response = api.get(ME)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_me_get_and_patch(user):
    client = client_for(user)
    body = client.get(ME).json()
    assert body == {
        "id": user.pk,
        "email": user.email,
        "first_name": "Test",
        "last_name": "User",
        "date_joined": body["date_joined"],
        "organizations": [],
    }
    response = client.patch(
        ME, {"first_name": "  Grace ", "last_name": "Hopper", "email": "x@evil.test"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["first_name"] == "Grace"
    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.email) == ("Grace", "Hopper", body["email"])


def test_me_refuses_an_api_key(org_a, as_owner_a):
    secret = as_owner_a.post("/api/v1/api-keys/", {"name": "k", "scopes": {}}, format="json").json()["secret"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.get(ME)
    assert response.status_code == 403  # an API key acts for an organization, not for a person
    assert response.json()["code"] == "permission_denied"
