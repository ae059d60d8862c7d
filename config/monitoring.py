"""The gauges ``GET /metrics`` reads at each scrape (config/metrics.py serves them): the project layer registers
them, as it may read every app.

- ``crm_celery_queue_depth{queue}``: messages waiting in the broker (Redis lists of the queue and its priorities);
- ``crm_webhook_delivery_lag_seconds``: age of the oldest webhook delivery that is due and not yet delivered,
  over every organization (0 when none is);
- ``crm_webhook_deliveries_due``: how many are;
- ``crm_outbox_backlog`` and ``crm_outbox_oldest_seconds``: events not yet relayed, and the age of the oldest;
- ``crm_tenant_standby_pool`` and ``crm_tenant_standby_pool_target``: standby schemas ready for sign-up, and the
  size the refill task keeps.

The cross-organization figures are one query per 200 schemas (``UNION ALL`` over their tables, each answered
from a partial index), run once per scrape for the two gauges each feeds (``once_per_scrape``); a scrape every
15 s costs a few milliseconds per hundred organizations.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from integrations.choices import DeliveryStatus
from integrations.models import OutboxEvent, WebhookDelivery
from tenants.choices import OrganizationStatus
from tenants.models import Organization

from .breaker import breaker_for
from .metrics import once_per_scrape, register_gauge

SCHEMAS_PER_QUERY = 200
# kombu's Redis transport keeps a queue's messages of priority p in the list "<queue>\x06\x16<p>" (p > 0).
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
_broker_clients: dict[str, redis.Redis] = {}


def _queues() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for route in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    return sorted(names)


def queue_depth() -> Iterator[tuple[tuple[str, ...], float]]:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return
    client = _broker_clients.get(url)
    if client is None:
        timeout = settings.REDIS_TIMEOUT_SECONDS
        client = _broker_clients[url] = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    with breaker_for(url).guard("queue depth", "not reported"):
        for queue in _queues():
            lists = [queue] + [f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS if step]
            pipe = client.pipeline(transaction=False)
            for name in lists:
                pipe.llen(name)
            yield (queue,), float(sum(pipe.execute()))


def _schemas() -> list[str]:
    statuses = [OrganizationStatus.ACTIVE, OrganizationStatus.SUSPENDED]
    return list(Organization.objects.filter(status__in=statuses).values_list("schema_name", flat=True))


def _over_schemas(select: str, table: str) -> list[tuple]:
    """``select`` (with ``{table}`` for the schema-qualified table) run in every organization's schema."""
    quote = connection.ops.quote_name
    rows: list[tuple] = []
    schemas = _schemas()
    for start in range(0, len(schemas), SCHEMAS_PER_QUERY):
        chunk = schemas[start : start + SCHEMAS_PER_QUERY]
        sql = " UNION ALL ".join(select.format(table=f"{quote(schema)}.{quote(table)}") for schema in chunk)
        with connection.cursor() as cursor:
            cursor.execute(sql)
            rows.extend(cursor.fetchall())
    return rows


def _age(oldest) -> float:
    return max(0.0, (timezone.now() - oldest).total_seconds()) if oldest is not None else 0.0


@once_per_scrape
def _deliveries_due() -> list[tuple]:
    assert DeliveryStatus.PENDING.value.isalpha()  # a literal in the SQL below
    return _over_schemas(
        "SELECT count(*), min(next_attempt_at) FROM {table} "
        f"WHERE status = '{DeliveryStatus.PENDING.value}' AND next_attempt_at <= now()",
        WebhookDelivery._meta.db_table,
    )


def delivery_lag() -> Iterator[tuple[tuple[str, ...], float]]:
    oldest = [row[1] for row in _deliveries_due() if row[1] is not None]
    yield (), _age(min(oldest)) if oldest else 0.0


def deliveries_due() -> Iterator[tuple[tuple[str, ...], float]]:
    yield (), float(sum(row[0] for row in _deliveries_due()))


@once_per_scrape
def _outbox() -> list[tuple]:
    return _over_schemas(
        "SELECT count(*), min(occurred_at) FROM {table} WHERE relayed_at IS NULL", OutboxEvent._meta.db_table
    )


def outbox_backlog() -> Iterator[tuple[tuple[str, ...], float]]:
    yield (), float(sum(row[0] for row in _outbox()))


def outbox_oldest() -> Iterator[tuple[tuple[str, ...], float]]:
    oldest = [row[1] for row in _outbox() if row[1] is not None]
    yield (), _age(min(oldest)) if oldest else 0.0


def standby_pool() -> Iterator[tuple[tuple[str, ...], float]]:
    yield (), float(Organization.objects.filter(status=OrganizationStatus.STANDBY).count())


def standby_pool_target() -> Iterator[tuple[tuple[str, ...], float]]:
    yield (), float(settings.TENANT_STANDBY_POOL_SIZE)


register_gauge("crm_celery_queue_depth", "Messages waiting in the broker", ("queue",), queue_depth)
register_gauge(
    "crm_webhook_delivery_lag_seconds", "Age of the oldest due webhook delivery not yet delivered", (), delivery_lag
)
register_gauge("crm_webhook_deliveries_due", "Webhook deliveries due and not yet delivered", (), deliveries_due)
register_gauge("crm_outbox_backlog", "Outbox events not yet relayed", (), outbox_backlog)
register_gauge("crm_outbox_oldest_seconds", "Age of the oldest outbox event not yet relayed", (), outbox_oldest)
register_gauge("crm_tenant_standby_pool", "Standby schemas ready for sign-up", (), standby_pool)
register_gauge("crm_tenant_standby_pool_target", "Standby schemas the refill task keeps", (), standby_pool_target)
