"""Fixtures of the fault suite: an organization with an owner and a webhook endpoint (committed, so API and
worker processes see them), Redis servers of the suite's own, and the API and workers pointed at them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.db import connection

from tests.conftest import committed
from tests.factories import make_member, make_organization, make_user
from tests.integrations.conftest import loopback, receiver  # noqa: F401 - fixtures
from tests.integrations.worker import WorkerPool, celery_worker  # noqa: F401 - fixtures

from .processes import Gunicorn, RedisServer, app_environment

# What workers of the suite run with: local receivers allowed.
WORKER_SETTINGS = {"WEBHOOK_ALLOW_LOOPBACK": True}


def database_url(settings_dict: dict) -> str:
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or 5432
    return f"postgres://{settings_dict['USER']}{password}@{host}:{port}/{settings_dict['NAME']}"


@dataclass
class Tenant:
    organization: object
    owner: object
    headers: dict[str, str]
    endpoint_id: int


@pytest.fixture
def tenant(loopback, receiver):  # noqa: F811
    """An organization with a signed-in owner and one endpoint subscribed to every event."""
    from identity.services import tokens_for
    from integrations import services
    from tenants.services import organization_delete, organization_purge

    organization = committed(make_organization, name=f"Faults {uuid.uuid4().hex[:6]}")
    owner = committed(make_user)
    committed(make_member, user=owner, organization=organization, role="owner")

    def endpoint():
        from django_tenants.utils import tenant_context

        with tenant_context(organization):
            return services.webhook_endpoint_create(url=receiver.url, event_types=["*"], actor=None)[0].pk

    endpoint_id = committed(endpoint)
    headers = {"Authorization": f"Bearer {tokens_for(user=owner)['access']}", "X-Organization": organization.slug}
    yield Tenant(organization=organization, owner=owner, headers=headers, endpoint_id=endpoint_id)
    committed(organization_delete, organization=organization)
    committed(organization_purge, organization=organization)


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def stack(tmp_path, redis_server, celery_worker):  # noqa: F811
    """``stack(database_url=None)``: the API (gunicorn) and a worker factory on the suite's own Redis (cache on
    database 0, broker on database 1) and on the test database (or the one given)."""
    started: list[Gunicorn] = []

    @dataclass
    class Stack:
        api: Gunicorn | None
        workers: WorkerPool
        env: dict[str, str]

        def worker(self, *, settings: dict | None = None, transport: dict | None = None, **kwargs):
            settings = {**WORKER_SETTINGS, **(settings or {})}
            return self.workers.start(settings=settings, transport=transport or {}, env=self.env, **kwargs)

        def beat(self, *, sweep_seconds: float = 1.0):
            return self.workers.beat(env={**self.env, "WEBHOOK_SWEEP_INTERVAL_SECONDS": str(sweep_seconds)})

    def build(*, database: str | None = None, api: bool = True, api_env: dict | None = None) -> Stack:
        env = {
            "DATABASE_URL": database or database_url(connection.settings_dict),
            "REDIS_URL": redis_server.url_for(0),
            "CELERY_BROKER_URL": redis_server.url_for(1),
            "CACHE_KEY_PREFIX": f"faults{uuid.uuid4().hex[:8]}",
            "CELERY_TASK_DEFAULT_QUEUE": celery_worker.queue,
        }
        base = app_environment(
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
            broker_url=env["CELERY_BROKER_URL"],
            key_prefix=env["CACHE_KEY_PREFIX"],
        )
        server = None
        if api:
            api_env = {**base, **env, "WEB_CONCURRENCY": "1", "WEB_THREADS": "8", **(api_env or {})}
            server = Gunicorn(env=api_env, log=tmp_path / f"api-{len(started)}.log").start()
            started.append(server)
        return Stack(api=server, workers=celery_worker, env=env)

    yield build
    for api in started:
        api.close()
