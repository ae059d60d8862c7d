"""Passwords are hashed with Argon2id in production; older hashes are upgraded at the next sign-in.

The suite itself runs with a fast hasher (tests/conftest.py); these tests put the production list back."""

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher, identify_hasher, make_password
from django.test import override_settings
from rest_framework.test import APIClient

from config import settings as project_settings
from identity.hashers import Argon2idPasswordHasher
from identity.models import User

from ..factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.django_db

production_hashers = override_settings(PASSWORD_HASHERS=project_settings.PASSWORD_HASHERS)


def sign_in(email: str):
    return APIClient().post("/api/v1/auth/token/", {"email": email, "password": DEFAULT_PASSWORD}, format="json")


def test_the_production_list_puts_argon2id_first():
    assert project_settings.PASSWORD_HASHERS[0] == "identity.hashers.Argon2idPasswordHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in project_settings.PASSWORD_HASHERS  # still verifies
    with production_hashers:
        encoded = make_password(DEFAULT_PASSWORD)
        assert isinstance(get_hasher(), Argon2idPasswordHasher)
    assert encoded.startswith("argon2$argon2id$v=19$m=47104,t=2,p=1$")


@pytest.mark.parametrize(
    "previous",
    [
        pytest.param(lambda: make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256"), id="pbkdf2"),
        pytest.param(  # Django's own parameters: 100 MiB, 8 lanes
            lambda: Argon2PasswordHasher().encode(DEFAULT_PASSWORD, Argon2PasswordHasher().salt()),
            id="argon2-other-parameters",
        ),
    ],
)
def test_an_older_hash_is_upgraded_at_sign_in(unique_email, previous):
    user = make_user(email=unique_email("upgrade"))
    with production_hashers:
        User.objects.filter(pk=user.pk).update(password=previous())
        old = User.objects.get(pk=user.pk).password

        response = sign_in(user.email)

        assert response.status_code == 200, response.content
        upgraded = User.objects.get(pk=user.pk).password
        assert upgraded != old
        assert upgraded.startswith("argon2$argon2id$v=19$m=47104,t=2,p=1$")
        assert identify_hasher(upgraded).algorithm == "argon2"
        assert sign_in(user.email).status_code == 200  # the new hash verifies
        assert User.objects.get(pk=user.pk).password == upgraded  # and is not rehashed again
