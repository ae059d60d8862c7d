from __future__ import annotations

import pytest

from integrations import delivery

from .receiver import Receiver
from .worker import celery_worker  # noqa: F401 - a fixture for real-worker tests


@pytest.fixture
def receiver():
    instance = Receiver().start()
    yield instance
    instance.gate.set()
    instance.stop()


@pytest.fixture
def loopback(settings):
    """Local receivers are allowed (as in development); everything else private stays refused."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    return settings


@pytest.fixture(autouse=True)
def _fresh_pools():
    yield
    for pool in delivery._pools.values():
        pool.close()
    delivery._pools.clear()


@pytest.fixture
def make_endpoint(in_tenant):
    """``make_endpoint(org, url, event_types=["*"])`` → (endpoint, secret), created by the service."""
    from integrations import services

    def make(organization, url: str, event_types=("*",), **fields):
        with in_tenant(organization):
            return services.webhook_endpoint_create(url=url, event_types=list(event_types), actor=None, **fields)

    return make


@pytest.fixture
def resolver(monkeypatch):
    """``resolver({"hooks.example.test": ["93.184.216.34"]})``: what DNS answers for the names given."""
    answers: dict[str, list[str]] = {}
    from integrations import ssrf

    real = ssrf._getaddrinfo

    def fake(host, port):
        return answers[host] if host in answers else real(host, port)

    monkeypatch.setattr(ssrf, "_getaddrinfo", fake)
    return answers.update
