"""Google sign-in, verified by the real google-auth library against tokens signed here and certificates served
from a local HTTP server (the suite may only reach loopback)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt

from identity.models import User
from rbac.models import Membership

from ..factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/auth/google/"
CLIENT_ID = "1234-web.apps.googleusercontent.com"
OTHER_CLIENT_ID = "1234-ios.apps.googleusercontent.com"
KID = "test-key-1"


def _key_and_cert(common_name: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


class CertServer:
    """Serves ``{kid: PEM certificate}`` like https://www.googleapis.com/oauth2/v1/certs."""

    def __init__(self, certs: dict[str, str]):
        self.certs = certs
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                body = json.dumps(server.certs).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/oauth2/v1/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def keys():
    google_private, google_cert = _key_and_cert("google")
    forger_private, _forger_cert = _key_and_cert("forger")
    return {"google": google_private, "forger": forger_private, "cert": google_cert}


@pytest.fixture
def certs(keys, settings):
    with CertServer({KID: keys["cert"]}) as server:
        settings.GOOGLE_CERTS_URL = server.url
        settings.GOOGLE_CLIENT_IDS = [CLIENT_ID, OTHER_CLIENT_ID]
        yield server


@pytest.fixture
def token(keys, unique_email):
    """``token(**claims)`` → an ID token signed like Google signs them, for a fresh verified address."""
    email = unique_email("google")

    def make(*, key="google", kid=KID, **claims):
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "azp": CLIENT_ID,
            "aud": CLIENT_ID,
            "sub": "110169484474386276334",
            "email": email,
            "email_verified": True,
            "given_name": "Grace",
            "family_name": "Hopper",
            "iat": now,
            "exp": now + 3600,
            **claims,
        }
        signer = crypt.RSASigner.from_string(keys[key], key_id=kid)
        return google_jwt.encode(signer, payload, key_id=kid).decode()

    make.email = email
    return make


def google_sign_in(api, id_token):
    return api.post(URL, {"id_token": id_token}, format="json")


def _assert_invalid(response):
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "invalid_google_token"


def test_first_sign_in_creates_a_user_without_password_and_their_organization(api, certs, token):
    response = google_sign_in(api, token())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == token.email
    assert [org["name"] for org in body["organizations"]] == ["Grace's organization"]
    assert Membership.objects.get(user__email=token.email).role.key == "owner"
    user = User.objects.get(email=token.email)
    assert (user.first_name, user.last_name) == ("Grace", "Hopper")
    assert not user.has_usable_password()
    assert user.last_login is not None
    assert certs.requests == 1  # verified against the served certificates

    me = api.get("/api/v1/auth/me/", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.status_code == 200
    assert me.json()["id"] == user.pk

    again = google_sign_in(api, token())
    assert again.status_code == 200
    assert again.json()["user"]["id"] == user.pk
    assert User.objects.filter(email=token.email).count() == 1


def test_existing_account_signs_in_and_keeps_its_password(api, certs, token, org_a):
    user = make_user(email=token.email.upper())
    from ..factories import make_member

    make_member(user=user, organization=org_a)
    response = google_sign_in(api, token(email=token.email.upper(), aud=OTHER_CLIENT_ID))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"]["id"] == user.pk
    assert [org["slug"] for org in body["organizations"]] == [org_a.slug]
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)
    assert user.first_name == "Test"  # not overwritten


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "someone-else.apps.googleusercontent.com"}, id="wrong-audience"),
        pytest.param({"email_verified": False}, id="unverified-email"),
        pytest.param({"email_verified": "false"}, id="unverified-email-string"),
        pytest.param({"email_verified": None}, id="no-email-verified-claim"),
        pytest.param({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, id="issued-in-the-future"),
        pytest.param({"iss": "https://evil.example.com"}, id="wrong-issuer"),
        pytest.param({"email": ""}, id="no-email"),
    ],
)
def test_invalid_tokens_are_401_and_create_nothing(api, certs, token, claims):
    users = User.objects.count()
    _assert_invalid(google_sign_in(api, token(**claims)))
    assert User.objects.count() == users


def test_unverified_email_says_so(api, certs, token):
    response = google_sign_in(api, token(email_verified=False))
    _assert_invalid(response)
    assert "not verified" in response.json()["detail"]


def test_bad_signature_is_401(api, certs, token):
    _assert_invalid(google_sign_in(api, token(key="forger")))  # right key id, wrong key
    assert not User.objects.filter(email=token.email).exists()


def test_tampered_payload_is_401(api, certs, token):
    header, _payload, signature = token().split(".")
    _h, forged_payload, _s = token(email="ceo@example.test").split(".")
    _assert_invalid(google_sign_in(api, f"{header}.{forged_payload}.{signature}"))


def test_unknown_key_id_is_401(api, certs, token):
    _assert_invalid(google_sign_in(api, token(kid="rotated-away")))


def test_garbage_is_401(api, certs):
    _assert_invalid(google_sign_in(api, "not.a.jwt"))


def test_disabled_without_client_ids(api, certs, token, settings):
    settings.GOOGLE_CLIENT_IDS = []
    response = google_sign_in(api, token())
    assert response.status_code == 404
    assert response.json()["code"] == "google_sign_in_disabled"
    assert certs.requests == 0


def test_certificates_unreachable_is_503(api, certs, token):
    certs.status = 500
    response = google_sign_in(api, token())
    assert response.status_code == 503
    assert response.json()["code"] == "google_unavailable"


def test_disabled_account_cannot_sign_in_with_google(api, certs, token):
    make_user(email=token.email)
    User.objects.filter(email=token.email).update(is_active=False)
    response = google_sign_in(api, token())
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_missing_token_is_400(api, certs):
    response = api.post(URL, {}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "id_token"
