"""Password change (signed in) and password reset by e-mailed one-time code."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from identity.models import OneTimeCode, User
from identity.services import tokens_for

from ..factories import DEFAULT_PASSWORD, make_user
from ..problems import field_error

pytestmark = pytest.mark.django_db

CHANGE = "/api/v1/auth/password/change/"
RESET = "/api/v1/auth/password/reset/"
CONFIRM = "/api/v1/auth/password/reset/confirm/"
REFRESH = "/api/v1/auth/token/refresh/"
NEW_PASSWORD = "Another-Long-Secret-42"


@pytest.fixture
def user(unique_email):
    return make_user(email=unique_email("pw"))


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def sign_in(email, password=DEFAULT_PASSWORD):
    return APIClient().post("/api/v1/auth/token/", {"email": email, "password": password}, format="json")


# --- change -------------------------------------------------------------------------------------------------


def test_change_needs_a_session(api):
    response = api.post(CHANGE, {"current_password": "x", "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 401


def test_change_with_a_wrong_current_password_is_400(user):
    session = tokens_for(user=user)
    response = bearer(session["access"]).post(
        CHANGE, {"current_password": "Not-The-Password-1", "new_password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["errors"][0]["code"]) == ("validation_error", "wrong_password")
    assert body["errors"][0]["field"] == "current_password"
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


@pytest.mark.parametrize("weak", ["short", "password123", "12345678901234", "<email>"])
def test_change_to_a_weak_password_is_400(user, weak):
    weak = user.email if weak == "<email>" else weak
    session = tokens_for(user=user)
    response = bearer(session["access"]).post(
        CHANGE, {"current_password": DEFAULT_PASSWORD, "new_password": weak}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["errors"][0]["code"]) == ("validation_error", "weak_password")
    assert body["errors"][0]["field"] == "new_password"
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_change_ends_every_session_and_answers_a_new_one(user):
    old_sessions = [tokens_for(user=user) for _ in range(2)]
    other = make_user()
    other_session = tokens_for(user=other)
    client = bearer(old_sessions[0]["access"])

    response = client.post(CHANGE, {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    new_session = response.json()
    assert new_session["user"]["id"] == user.pk

    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    for old in old_sessions:
        refreshed = APIClient().post(REFRESH, {"refresh": old["refresh"]}, format="json")
        assert refreshed.status_code == 401
        assert refreshed.json()["code"] == "token_not_valid"
        assert bearer(old["access"]).get("/api/v1/auth/me/").status_code == 401
    assert BlacklistedToken.objects.filter(token__user=user).count() == 2
    assert OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True).count() == 1

    assert bearer(new_session["access"]).get("/api/v1/auth/me/").status_code == 200
    assert APIClient().post(REFRESH, {"refresh": new_session["refresh"]}, format="json").status_code == 200
    # Someone else's sessions are untouched.
    assert APIClient().post(REFRESH, {"refresh": other_session["refresh"]}, format="json").status_code == 200

    assert sign_in(user.email).status_code == 401
    assert sign_in(user.email, NEW_PASSWORD).status_code == 200


def test_guessing_the_current_password_locks(user, settings):
    settings.AUTH_LOCKOUT_MAX_FAILURES = 2
    client = bearer(tokens_for(user=user)["access"])
    wrong = {"current_password": "Not-The-Password-1", "new_password": NEW_PASSWORD}
    assert client.post(CHANGE, wrong, format="json").status_code == 400
    assert client.post(CHANGE, wrong, format="json").status_code == 429
    right = {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}
    response = client.post(CHANGE, right, format="json")
    assert response.status_code == 429
    assert response.json()["code"] == "account_locked"


# --- reset --------------------------------------------------------------------------------------------------


@pytest.fixture
def request_code(api, django_capture_on_commit_callbacks, mailoutbox):
    """``request_code(email)`` → the code e-mailed for it, or None when no e-mail went out."""

    def request(email):
        sent = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(RESET, {"email": email}, format="json")
        assert response.status_code == 202
        if len(mailoutbox) == sent:
            return None
        assert len(mailoutbox) == sent + 1
        message = mailoutbox[-1]
        assert message.to == [email.strip().lower()]
        return re.search(r"\b(\d{6})\b", message.body).group(1)

    return request


def confirm(api, email, code, password=NEW_PASSWORD):
    return api.post(CONFIRM, {"email": email, "code": code, "new_password": password}, format="json")


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _assert_invalid_code(response):
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["errors"][0]["code"]) == ("validation_error", "invalid_code")
    assert body["errors"][0]["field"] == "code"


def test_reset_e_mails_a_code_and_stores_only_its_keyed_hash(user, request_code, mailoutbox):
    code = request_code(user.email.upper())
    assert len(code) == 6
    assert mailoutbox[-1].subject == "Your password reset code"
    stored = OneTimeCode.objects.get(user=user)
    assert code not in stored.code_hash
    assert len(stored.code_hash) == 64
    assert stored.purpose == OneTimeCode.Purpose.PASSWORD_RESET
    assert timedelta(minutes=9) < stored.expires_at - timezone.now() <= timedelta(minutes=10)


def test_reset_for_an_unknown_or_inactive_email_is_202_and_sends_nothing(request_code, unique_email, user):
    assert request_code(unique_email("nobody")) is None
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert request_code(user.email) is None
    assert not OneTimeCode.objects.exists()


def test_confirm_sets_the_password_and_ends_every_session(api, user, request_code):
    old = tokens_for(user=user)
    code = request_code(user.email)
    response = confirm(api, user.email, code)
    assert response.status_code == 200, response.content
    session = response.json()
    assert session["user"]["id"] == user.pk
    assert bearer(session["access"]).get("/api/v1/auth/me/").status_code == 200
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert api.post(REFRESH, {"refresh": old["refresh"]}, format="json").status_code == 401
    assert bearer(old["access"]).get("/api/v1/auth/me/").status_code == 401
    assert OneTimeCode.objects.get(user=user).used_at is not None


def test_code_works_once(api, user, request_code):
    code = request_code(user.email)
    assert confirm(api, user.email, code).status_code == 200
    _assert_invalid_code(confirm(api, user.email, code, "Yet-Another-Secret-77"))
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_wrong_code_is_400(api, user, request_code):
    code = request_code(user.email)
    _assert_invalid_code(confirm(api, user.email, _wrong(code)))
    assert OneTimeCode.objects.get(user=user).attempts == 1
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)
    assert confirm(api, user.email, code).status_code == 200


def test_expired_code_is_400(api, user, request_code):
    code = request_code(user.email)
    OneTimeCode.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_invalid_code(confirm(api, user.email, code))
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_too_many_attempts_burn_the_code(api, user, request_code, settings):
    code = request_code(user.email)
    for _ in range(settings.OTP_MAX_ATTEMPTS):
        _assert_invalid_code(confirm(api, user.email, _wrong(code)))
    _assert_invalid_code(confirm(api, user.email, code))  # the right code, too late
    assert OneTimeCode.objects.get(user=user).attempts == settings.OTP_MAX_ATTEMPTS
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_a_newer_code_invalidates_older_ones(api, user, request_code):
    older = request_code(user.email)
    newer = request_code(user.email)
    if older == newer:  # one chance in a million
        pytest.skip("both codes are equal")
    _assert_invalid_code(confirm(api, user.email, older))
    assert confirm(api, user.email, newer).status_code == 200


def test_a_code_is_bound_to_its_account(api, user, request_code):
    other = make_user()
    code = request_code(user.email)
    request_code(other.email)
    _assert_invalid_code(confirm(api, other.email, code))
    _assert_invalid_code(confirm(api, "nobody-" + user.email, code))


def test_weak_new_password_keeps_the_code(api, user, request_code):
    code = request_code(user.email)
    response = confirm(api, user.email, code, "password123")
    assert response.status_code == 400
    assert field_error(response)["code"] == "weak_password"
    assert confirm(api, user.email, code).status_code == 200


def test_codes_per_hour_are_capped(user, request_code, settings):
    settings.OTP_MAX_PER_HOUR = 2
    assert request_code(user.email) is not None
    assert request_code(user.email) is not None
    assert request_code(user.email) is None  # still 202, nothing sent
    assert OneTimeCode.objects.filter(user=user).count() == 2


def test_reset_clears_a_sign_in_lockout(api, user, request_code, settings):
    settings.AUTH_LOCKOUT_MAX_FAILURES = 2
    for _ in range(2):
        sign_in(user.email, "Wrong-Password-1")
    assert sign_in(user.email).status_code == 429
    assert confirm(api, user.email, request_code(user.email)).status_code == 200
    assert sign_in(user.email, NEW_PASSWORD).status_code == 200


def test_reset_requests_are_throttled_per_client_address(api, unique_email):
    statuses = [
        api.post(RESET, {"email": unique_email()}, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(11)
    ]
    assert statuses[:10] == [202] * 10
    assert statuses[10] == 429  # a made-up X-Forwarded-For is not a new client
    assert APIClient(REMOTE_ADDR="203.0.113.7").post(RESET, {"email": unique_email()}, format="json").status_code == 202
