"""Prometheus metrics with the Prometheus project's own client (``prometheus-client``), served at ``GET /metrics``.

What is measured, and where:

- requests: ``crm_http_requests_total`` and ``crm_http_request_duration_seconds`` by method, route (the URL
  pattern, ``/api/v1/leads/{pk}/``) and status, counted by :class:`config.log.RequestLogMiddleware`;
- tasks: ``crm_celery_tasks_total`` by task and outcome (success, failure, retry, …), counted by every worker in
  Redis (one hash per deployment), so any web process reports the whole fleet's;
- gauges read when scraped, from collectors the project registers (:func:`register_gauge`, ``config/monitoring.py``):
  Celery queue depth, webhook delivery lag, outbox backlog, the standby pool.

Gunicorn runs several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (``config/gunicorn.py`` sets it) every
process writes its request metrics to files there and a scrape, whichever process answers it, adds them all up
(the client's multiprocess mode; gunicorn's ``child_exit`` hook marks a dead worker's files). Without it (the
development server, tests) the metrics are the process's own.

The endpoint answers a caller with ``Authorization: Bearer <METRICS_TOKEN>`` or a signed-in staff member (the
admin's session); anyone else gets 401. Under ``DJANGO_DEBUG=1`` without a token it is open, for local use.
"""

from __future__ import annotations

import contextvars
import functools
import hmac
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from celery.signals import task_postrun
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from .breaker import Unavailable, breaker_for

logger = logging.getLogger(__name__)

REQUESTS = Counter("crm_http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "crm_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    labels = (method, route, str(status))
    REQUESTS.labels(*labels).inc()
    REQUEST_SECONDS.labels(*labels).observe(seconds)


# --- task outcomes, counted in Redis ----------------------------------------------------------------------------


def _tasks_key() -> str:
    return f"{settings.CACHES['control'].get('KEY_PREFIX', 'crm')}:metrics:tasks"


def _redis():
    from django.core.cache import caches

    return caches["control"].redis_client()  # type: ignore[attr-defined]  # config.cache.ResilientRedisCache


@task_postrun.connect(dispatch_uid="config.metrics.count_task")
def count_task(task=None, state=None, **kwargs) -> None:
    """One more ``outcome`` for the task (Celery's final state of this run: SUCCESS, FAILURE, RETRY, …). A Redis
    outage skips the count (the breaker), never the task."""
    if task is None or not state:
        return
    try:
        with breaker_for(settings.REDIS_URL).guard("task metrics", "outcomes not counted"):
            _redis().hincrby(_tasks_key(), f"{task.name}|{str(state).lower()}", 1)
    except Unavailable:
        pass


def task_outcomes() -> dict[tuple[str, str], int]:
    with breaker_for(settings.REDIS_URL).guard("task metrics", "outcomes not reported"):
        raw = _redis().hgetall(_tasks_key())
    outcomes = {}
    for field, value in raw.items():
        name, _, outcome = (field.decode() if isinstance(field, bytes) else field).rpartition("|")
        outcomes[(name, outcome)] = int(value)
    return outcomes


# --- gauges the project registers ---------------------------------------------------------------------------------

Samples = Iterable[tuple[tuple[str, ...], float]]


@dataclass(frozen=True)
class Gauge:
    name: str
    documentation: str
    labels: tuple[str, ...]
    read: Callable[[], Samples]


_gauges: dict[str, Gauge] = {}
_scrape: contextvars.ContextVar[dict | None] = contextvars.ContextVar("metrics_scrape", default=None)
T = TypeVar("T")


def once_per_scrape(read: Callable[[], T]) -> Callable[[], T]:
    """``read`` run once per scrape, however many gauges use what it reads (outside a scrape, at every call)."""

    @functools.wraps(read)
    def cached() -> T:
        memo = _scrape.get()
        if memo is None:
            return read()
        if read not in memo:
            memo[read] = read()
        return memo[read]

    return cached


def register_gauge(name: str, documentation: str, labels: tuple[str, ...], read: Callable[[], Samples]) -> None:
    """A gauge read at every scrape: ``read()`` yields (label values, value). A reader that fails is logged and
    left out of that scrape; the others are served."""
    _gauges[name] = Gauge(name, documentation, labels, read)


class _ScrapeCollector(Collector):
    def collect(self):
        tasks = CounterMetricFamily("crm_celery_tasks", "Celery task runs by final state", labels=["task", "outcome"])
        try:
            for (name, outcome), count in sorted(task_outcomes().items()):
                tasks.add_metric([name, outcome], count)
        except Unavailable:
            pass
        yield tasks
        scrape = _scrape.set({})  # what several gauges read is read once (``once_per_scrape``)
        try:
            families = list(self._gauges())
        finally:
            _scrape.reset(scrape)
        yield from families

    def _gauges(self):
        for gauge in _gauges.values():
            family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=list(gauge.labels))
            try:
                for labels, value in gauge.read():
                    family.add_metric(list(labels), value)
            except Exception:
                logger.exception("metric %s could not be read", gauge.name)
                continue
            yield family


def exposition() -> bytes:
    """The text the endpoint serves: this process's metrics, or every process's in multiprocess mode."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        registry.register(_ScrapeCollector())
        return generate_latest(registry)
    return generate_latest(REGISTRY) + generate_latest(_with(registry, _ScrapeCollector()))


def _with(registry: CollectorRegistry, collector: Collector) -> CollectorRegistry:
    registry.register(collector)
    return registry


def allowed(request: HttpRequest) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    elif settings.DEBUG:
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    from .api.errors import problem_for_status

    if not allowed(request):
        response = problem_for_status(401, "Metrics need the METRICS_TOKEN bearer token or a staff session.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
