"""The operators' admin for users: list, search, filter, create with a hashed password, memberships read-only."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from identity.models import User
from identity.services import tokens_for

from ..factories import make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/identity/user/"


@pytest.fixture
def operator():
    user = User.objects.create_superuser("operator@crm.test", "Operator-Password-1")
    client = Client()
    client.force_login(user)
    return client


def test_staff_only(client):
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_list_search_and_filter(operator, unique_email):
    active = make_user(email=unique_email("findme"))
    inactive = make_user(email=unique_email("findme"))
    User.objects.filter(pk=inactive.pk).update(is_active=False)

    response = operator.get(CHANGELIST, {"q": "findme"})
    assert response.status_code == 200
    listed = {user.pk for user in response.context["cl"].result_list}
    assert listed == {active.pk, inactive.pk}

    response = operator.get(CHANGELIST, {"q": "findme", "is_active__exact": "0"})
    assert {user.pk for user in response.context["cl"].result_list} == {inactive.pk}


def test_add_user_hashes_the_password(operator, unique_email):
    email = unique_email("added")
    response = operator.post(
        "/admin/identity/user/add/",
        {
            "email": email.upper(),
            "first_name": "Added",
            "last_name": "Person",
            "usable_password": "true",
            "password1": "Fresh-Password-2026",
            "password2": "Fresh-Password-2026",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    user = User.objects.get(email=email)
    assert user.password != "Fresh-Password-2026"
    assert user.check_password("Fresh-Password-2026")


def test_add_refuses_an_existing_email_in_another_case(operator, unique_email):
    existing = make_user(email=unique_email("taken"))
    response = operator.post(
        "/admin/identity/user/add/",
        {"email": existing.email.upper(), "usable_password": "false"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert User.objects.filter(email=existing.email).count() == 1


def test_change_page_shows_memberships_read_only(operator, owner_a, org_a):
    response = operator.get(f"/admin/identity/user/{owner_a.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert org_a.name in html
    assert 'name="memberships-0-organization"' not in html  # displayed, not editable


def test_setting_a_password_in_the_admin_ends_every_session(operator, unique_email):
    user = make_user(email=unique_email("reset-by-op"))
    session = tokens_for(user=user)
    response = operator.post(
        f"/admin/identity/user/{user.pk}/password/",
        {"usable_password": "true", "password1": "Operator-Chosen-77", "password2": "Operator-Chosen-77"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("Operator-Chosen-77")
    refreshed = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": session["refresh"]}, format="json")
    assert refreshed.status_code == 401
