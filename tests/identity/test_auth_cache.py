"""The signed-in user is read through the control cache: a warm request reads no user row, and every change to the
user (deactivation, a password change, deletion, an operator's edit in the admin) applies on the very next
request. A request that read the row before a change cannot put the old row back in the cache."""

import pytest
from django.core.cache import caches
from django.db import connection
from django.db.models.query import QuerySet
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from identity import authentication
from identity.authentication import user_by_id
from identity.models import User
from identity.services import password_change

from ..conftest import client_for
from ..factories import DEFAULT_PASSWORD, make_member, make_user

pytestmark = pytest.mark.django_db

CURRENT = "/api/v1/organizations/current/"
NEW_PASSWORD = "Another-Long-Secret-42"


def _measured(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CURRENT)
    return response, [q["sql"] for q in queries.captured_queries]


@pytest.fixture
def signed_in(org_a):
    """A member of org A (an owner: they may hold API keys) and a warm client of theirs."""
    user = make_user()
    make_member(user=user, organization=org_a, role="owner")
    client = client_for(user, org_a)
    assert client.get(CURRENT).status_code == 200
    return user, client


def test_a_warm_request_reads_no_user_row(signed_in):
    _user, client = signed_in
    response, sql = _measured(client)
    assert response.status_code == 200
    assert sql == []  # neither the user nor the authorization decision


def _deactivate(user):
    user.is_active = False
    user.save(update_fields=["is_active"])


def _deactivate_in_the_admin(user):
    operator = User.objects.create_superuser("operator-cache@crm.test", "Operator-Password-1")
    admin = Client()
    admin.force_login(operator)
    url = f"/admin/identity/user/{user.pk}/change/"
    page = admin.get(url)
    data = {"email": user.email, "first_name": user.first_name, "last_name": user.last_name}  # is_active unticked
    data["date_joined_0"], data["date_joined_1"] = user.date_joined.strftime("%Y-%m-%d %H:%M:%S").split()
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({f"{formset.prefix}-{name}": value for name, value in management.initial.items()})
        for index, form in enumerate(formset.initial_forms):
            data[f"{formset.prefix}-{index}-id"] = form.instance.pk
            data[f"{formset.prefix}-{index}-user"] = user.pk
    response = admin.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    user.refresh_from_db()
    assert not user.is_active


def _change_password(user):
    password_change(user=user, current_password=DEFAULT_PASSWORD, new_password=NEW_PASSWORD, ip="127.0.0.1")


def _delete(user):
    user.delete()


CHANGES = {
    "deactivated": (_deactivate, "User is inactive"),
    "deactivated by an operator in the admin": (_deactivate_in_the_admin, "User is inactive"),
    "password changed": (_change_password, "The user's password has been changed."),
    "deleted": (_delete, "User not found"),
}


@pytest.mark.parametrize(("change", "detail"), CHANGES.values(), ids=CHANGES.keys())
def test_a_change_to_the_user_applies_on_the_next_request(signed_in, change, detail):
    user, client = signed_in
    assert _measured(client)[1] == []  # warm: the user comes from the cache
    change(user)
    response = client.get(CURRENT)
    assert response.status_code == 401
    assert response.json()["detail"] == detail


def _user_rows(sql):
    return [s for s in sql if s.startswith('SELECT "identity_user"."id"')]


def test_a_saved_user_is_read_once_then_cached_again(signed_in):
    user, client = signed_in
    user.first_name = "Renamed"
    user.save(update_fields=["first_name"])
    response, sql = _measured(client)
    assert response.status_code == 200
    assert len(_user_rows(sql)) == 1
    assert user_by_id(user.pk).first_name == "Renamed"
    assert _measured(client)[1] == []


def test_a_request_that_read_the_row_before_a_change_cannot_cache_it(signed_in, monkeypatch):
    user, client = signed_in
    caches["control"].delete(authentication._keys(user.pk)[1])  # cold: the next read goes to PostgreSQL
    first = QuerySet.first

    def read_then_deactivated(queryset):
        row = first(queryset)
        if queryset.model is User:  # the change commits while this request holds the old row
            monkeypatch.setattr(QuerySet, "first", first)
            _deactivate(User.objects.get(pk=user.pk))
        return row

    monkeypatch.setattr(QuerySet, "first", read_then_deactivated)
    assert user_by_id(user.pk).is_active  # what the slow request read, before the change
    assert not user_by_id(user.pk).is_active  # the next request sees the change, not the slow request's row
    response = client.get(CURRENT)
    assert response.status_code == 401
    assert response.json()["detail"] == "User is inactive"


def test_a_deactivated_creators_api_key_stops_on_the_next_request(signed_in):
    user, client = signed_in
    created = client.post(
        "/api/v1/api-keys/", {"name": "Sync", "scopes": {"crm.lead.view": "all"}}, format="json"
    ).json()
    integration = APIClient()
    integration.credentials(HTTP_X_API_KEY=created["secret"])
    assert integration.get("/api/v1/leads/").status_code == 200
    assert integration.get("/api/v1/leads/").status_code == 200  # warm: the key is cached
    _deactivate(user)
    response = integration.get("/api/v1/leads/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


def test_unreachable_cache_still_authenticates_from_postgresql(signed_in, monkeypatch):
    user, client = signed_in
    monkeypatch.setattr(caches["control"], "get_many", lambda *args, **kwargs: {})  # what it answers when down
    monkeypatch.setattr(caches["control"], "set", lambda *args, **kwargs: None)
    assert client.get(CURRENT).status_code == 200
    _deactivate(user)
    assert client.get(CURRENT).status_code == 401
