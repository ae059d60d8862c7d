"""An unreachable PostgreSQL is an outage, not a bug: 503 ``database_unavailable`` with ``Retry-After``, from
DRF views and from plain Django code alike. Errors the database answered with keep their own handling.
tests/faults/ stops a real PostgreSQL under the API."""

from __future__ import annotations

import psycopg
import pytest
from django.db import IntegrityError, InterfaceError, OperationalError

from config.outages import RETRY_AFTER_SECONDS, database_unreachable

from ..conftest import client_for

pytestmark = pytest.mark.django_db


def _wrapped(cause: Exception) -> OperationalError:
    """What Django raises for a driver error: its own class, caused by psycopg's."""
    error = OperationalError(str(cause))
    error.__cause__ = cause
    return error


def _refused() -> OperationalError:
    try:
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=2")
    except psycopg.OperationalError as cause:
        return _wrapped(cause)
    raise AssertionError("port 1 accepted a connection")


def _assert_unavailable(response):
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body = response.json()
    assert (body["code"], body["status"], body["retry_after"]) == ("database_unavailable", 503, RETRY_AFTER_SECONDS)


def test_what_counts_as_unreachable():
    assert database_unreachable(_refused())
    assert database_unreachable(InterfaceError("connection already closed"))
    assert database_unreachable(_wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert database_unreachable(_wrapped(psycopg.errors.CannotConnectNow("the database system is starting up")))
    assert database_unreachable(_wrapped(psycopg.errors.TooManyConnections("too many clients")))
    assert not database_unreachable(_wrapped(psycopg.errors.QueryCanceled("statement timeout")))
    assert not database_unreachable(_wrapped(psycopg.errors.DeadlockDetected("deadlock detected")))
    assert not database_unreachable(IntegrityError("duplicate key"))
    assert not database_unreachable(RuntimeError("boom"))


def test_a_view_that_cannot_reach_the_database_answers_503(owner_a, org_a, monkeypatch):
    from crm import services

    def unreachable(**kwargs):
        raise _refused()

    monkeypatch.setattr(services, "lead_create", unreachable)
    client = client_for(owner_a, org_a)
    client.raise_request_exception = False
    _assert_unavailable(client.post("/api/v1/leads/", {"name": "x"}, format="json"))


def test_outside_drf_it_is_503_too(owner_a, org_a, monkeypatch):
    """Tenant resolution runs in middleware, before any view: Django's handler500 renders the outage."""
    from tenants import middleware

    def unreachable(request):
        raise _refused()

    monkeypatch.setattr(middleware, "resolve_organization", unreachable)
    client = client_for(owner_a, org_a)
    client.raise_request_exception = False
    _assert_unavailable(client.get("/api/v1/leads/"))


def test_an_error_the_database_answered_stays_a_500(owner_a, org_a, monkeypatch):
    from crm import services

    def cancelled(**kwargs):
        raise _wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))

    monkeypatch.setattr(services, "lead_create", cancelled)
    client = client_for(owner_a, org_a)
    client.raise_request_exception = False
    response = client.post("/api/v1/leads/", {"name": "x"}, format="json")
    assert (response.status_code, response.json()["code"]) == (500, "server_error")
