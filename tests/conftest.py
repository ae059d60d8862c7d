"""Shared test fixtures. Tests talk to a real PostgreSQL and a real Redis; nothing leaves the machine."""

from __future__ import annotations

import gc
import os
import uuid

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from config.celery import app as celery_app

from . import network_guard
from .factories import make_member, make_organization, make_user

network_guard.install()


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        from .faults.load import REPORT

        REPORT.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter):
    """The figures of the fault suite (tests/faults/), written by whichever process ran each fault."""
    from .faults.load import REPORT

    if REPORT.exists():
        terminalreporter.section("fault figures")
        terminalreporter.write(REPORT.read_text())


TEST_REDIS_DB = 15
TEST_BROKER_DB = 14


def _redis_url(db: int) -> str:
    base = settings.REDIS_URL.rsplit("/", 1)[0] if settings.REDIS_URL.count("/") >= 3 else settings.REDIS_URL
    return f"{base}/{db}"


# Cache keys of this test run carry this prefix; concurrent runs on one machine leave each other alone.
RUN_PREFIX = f"test{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def _test_services():
    """A dedicated Redis database with per-run keys (cleared between tests), a fast password hasher,
    e-mail kept in memory."""
    caches_config = {
        alias: {**config, "LOCATION": _redis_url(TEST_REDIS_DB), "KEY_PREFIX": f"{RUN_PREFIX}:{alias}"}
        for alias, config in settings.CACHES.items()
    }
    overrides = override_settings(
        CACHES=caches_config,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        CELERY_BROKER_URL=_redis_url(TEST_BROKER_DB),
    )
    overrides.enable()
    celery_app.conf.update(broker_url=_redis_url(TEST_BROKER_DB), task_always_eager=True)
    yield
    overrides.disable()


def clear_run_cache() -> None:
    client = caches["control"]._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"*{RUN_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_cache():
    from config import breaker

    clear_run_cache()
    yield
    breaker.reset_all()  # a test that pointed a cache at a closed port leaves no server skipped
    if connection.schema_name != "public":
        connection.set_schema_to_public()


@pytest.fixture(scope="session")
def tenants(django_db_setup, django_db_blocker, _test_services):
    """Two organizations, A and B, provisioned once for the session, each with an owner."""
    assert connection.settings_dict["NAME"].startswith("test_"), "refusing to write outside the test database"
    with django_db_blocker.unblock():
        org_a = make_organization(name="Org A", slug="org-a")
        org_b = make_organization(name="Org B", slug="org-b")
        owner_a = make_user(email="owner@org-a.test")
        owner_b = make_user(email="owner@org-b.test")
        make_member(user=owner_a, organization=org_a, role="owner")
        make_member(user=owner_b, organization=org_b, role="owner")
    return {"a": org_a, "b": org_b, "owner_a": owner_a, "owner_b": owner_b}


@pytest.fixture
def gc_collections():
    """The generations of the garbage collections that start while the test runs, in order. The collector's
    thresholds, which a test may set, are put back after."""
    started: list[int] = []

    def count(phase, info):
        if phase == "start":
            started.append(info["generation"])

    before = gc.get_threshold()
    gc.callbacks.append(count)
    try:
        yield started
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*before)


@pytest.fixture
def org_a(tenants, db):
    return tenants["a"]


@pytest.fixture
def org_b(tenants, db):
    return tenants["b"]


@pytest.fixture
def owner_a(tenants, db):
    return tenants["owner_a"]


@pytest.fixture
def owner_b(tenants, db):
    return tenants["owner_b"]


@pytest.fixture
def api():
    return APIClient()


def client_for(user=None, organization=None) -> APIClient:
    """An API client signed in as ``user`` (JWT) and addressed to ``organization`` (X-Organization)."""
    from identity.services import tokens_for

    client = APIClient()
    headers = {}
    if user is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {tokens_for(user=user)['access']}"
    if organization is not None:
        headers["HTTP_X_ORGANIZATION"] = organization.slug
    client.credentials(**headers)
    return client


@pytest.fixture
def as_owner_a(owner_a, org_a):
    return client_for(owner_a, org_a)


@pytest.fixture
def unique_email():
    return lambda prefix="user": f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"


@pytest.fixture
def member(db):
    """``member(org, role)`` → (user, client): a new member of ``org`` with a system role, signed in."""

    def make(organization, role: str = "sales_rep"):
        user = make_user()
        make_member(user=user, organization=organization, role=role)
        return user, client_for(user, organization)

    return make


@pytest.fixture
def in_tenant():
    """``with in_tenant(org):`` runs ORM code in the organization's schema, as a request would."""
    from django_tenants.utils import tenant_context

    return tenant_context


def committed(fn, *args, **kwargs):
    """Run ``fn`` on a connection of its own, outside the test's transaction, so its writes are committed
    and visible to other connections (threads, workers). The caller cleans up what it commits."""
    import threading

    from django.db import connections

    result: dict = {}

    def target():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
