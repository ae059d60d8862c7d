"""GET /metrics (config/metrics.py, config/monitoring.py): the named series, and who may read them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from config.mail import send_email_task
from integrations.choices import DeliveryStatus
from integrations.models import OutboxEvent, WebhookDelivery, WebhookEndpoint

from .factories import make_user

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token-0123456789"


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = TOKEN
    return settings


def scrape(**headers) -> tuple[int, str]:
    response = Client().get("/metrics", **headers)
    return response.status_code, response.content.decode()


def value(text: str, series: str) -> float:
    """The value of one sample, ``name{labels}`` exactly as exposed (labels in the exposition's order)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not exposed:\n{text[:3000]}"
    return float(match.group(1))


def test_anonymous_callers_are_refused_in_production(production):
    status, body = scrape()
    assert status == 401
    assert "crm_http_requests_total" not in body
    assert scrape(HTTP_AUTHORIZATION="Bearer wrong-token")[0] == 401
    assert scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")[0] == 200


def test_a_staff_session_may_read_them_without_the_token(production, unique_email):
    from identity.models import User

    staff = make_user(email=unique_email("staff"))
    User.objects.filter(pk=staff.pk).update(is_staff=True)
    member = make_user(email=unique_email("member"))
    client = Client()
    client.force_login(member)
    assert client.get("/metrics").status_code == 401
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get("/metrics").status_code == 200


def test_without_a_token_only_staff_in_production(settings):
    settings.DEBUG, settings.METRICS_TOKEN = False, ""
    assert scrape()[0] == 401
    assert scrape(HTTP_AUTHORIZATION="Bearer ")[0] == 401


def test_the_named_series_are_exposed(production, as_owner_a, org_a):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    _, before = scrape(**auth)
    route = 'method="GET",route="/api/v1/leads/",status="200"'
    requests_before = value(before, f"crm_http_requests_total{{{route}}}") if route in before else 0.0
    backlog_before = value(before, "crm_outbox_backlog")

    assert as_owner_a.get("/api/v1/leads/").status_code == 200
    send_email_task.delay(to=["someone@example.test"], subject="Hello", body="Hi")  # runs here (eager)
    with tenant_context(org_a):
        event = OutboxEvent.objects.create(type="lead.created", subject_type="lead", subject_id="1")
        endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.test/", event_types=["*"], secret="s")
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=event,
            event_type=event.type,
            status=DeliveryStatus.PENDING,
            next_attempt_at=timezone.now() - timedelta(minutes=10),
        )

    status, text = scrape(**auth)
    assert status == 200
    assert value(text, f"crm_http_requests_total{{{route}}}") == requests_before + 1
    assert value(text, f'crm_http_request_duration_seconds_bucket{{le="+Inf",{route}}}') >= 1
    assert value(text, f'crm_celery_tasks_total{{outcome="success",task="{send_email_task.name}"}}') >= 1
    assert value(text, 'crm_celery_queue_depth{queue="crm"}') >= 0
    assert value(text, "crm_webhook_delivery_lag_seconds") >= 600
    assert value(text, "crm_webhook_deliveries_due") >= 1
    assert value(text, "crm_outbox_backlog") == backlog_before + 1
    assert value(text, "crm_outbox_oldest_seconds") >= 0
    assert value(text, "crm_tenant_standby_pool") >= 0
    assert value(text, "crm_tenant_standby_pool_target") >= 0


def test_a_scrape_reads_each_organizations_tables_once(production, org_a, monkeypatch):
    """The outbox and the webhook deliveries feed two gauges each; every organization's tables are read once per
    scrape, one query per ``SCHEMAS_PER_QUERY`` schemas."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from config import monitoring

    monkeypatch.setattr(monitoring, "SCHEMAS_PER_QUERY", 1)
    schemas = len(monitoring._schemas())
    with CaptureQueriesContext(connection) as queries:
        status, text = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert status == 200
    sweeps = [query["sql"] for query in queries if "_outboxevent" in query["sql"] or "_webhookdelivery" in query["sql"]]
    assert len(sweeps) == 2 * schemas  # a query per schema for each of the two tables
    assert value(text, "crm_outbox_backlog") >= 0
    assert value(text, "crm_webhook_deliveries_due") >= 0


def test_gunicorn_workers_are_summed_in_one_scrape(tmp_path):
    """Gunicorn's worker processes each count their own requests; with the client's multiprocess mode
    (config/gunicorn.py) any of them answers a scrape with the sum."""
    import http.client

    from django.db import connection

    from .conftest import RUN_PREFIX, TEST_BROKER_DB, TEST_REDIS_DB, _redis_url
    from .faults.processes import Gunicorn, app_environment

    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = app_environment(
        database_url=database_url,
        redis_url=_redis_url(TEST_REDIS_DB),
        broker_url=_redis_url(TEST_BROKER_DB),
        key_prefix=RUN_PREFIX,
    )
    env.update(
        WEB_CONCURRENCY="2",
        WEB_THREADS="2",
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        READYZ_TIMEOUT_SECONDS="10",  # the counted requests are readiness checks: a busy machine must not fail them
    )
    api = Gunicorn(env=env, log=tmp_path / "gunicorn.log").start()
    try:

        def get(path: str, **headers) -> tuple[int, str]:
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
            conn.request("GET", path, headers={"Connection": "close", **headers})
            response = conn.getresponse()
            body = response.read().decode()
            conn.close()
            return response.status, body

        _, first = get("/metrics", Authorization=f"Bearer {TOKEN}")
        # Not /healthz: the start's readiness probes ask it, and a probe that timed out while a worker booted may be
        # answered (and counted) after this first scrape, one per probe.
        series = 'crm_http_requests_total{method="GET",route="/readyz",status="200"}'
        before = value(first, series) if series in first else 0.0
        # Concurrent requests, until both worker processes have counted some (which process accepts a connection
        # is the kernel's choice: on a busy machine one may take a long run of them).
        from concurrent.futures import ThreadPoolExecutor

        def writers() -> set[str]:
            return {path.name.rsplit("_", 1)[-1] for path in (tmp_path / "prometheus").glob("counter_*.db")}

        made = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            while made < 400 and (made < 40 or len(writers()) < 2):
                assert set(pool.map(lambda _: get("/readyz")[0], range(40))) == {200}
                made += 40
        scrapes = [get("/metrics", Authorization=f"Bearer {TOKEN}")[1] for _ in range(4)]
    finally:
        api.close()
    assert len(writers()) == 2, (writers(), api.output()[-2000:])  # both worker processes counted requests
    counted = [value(text, series) - before for text in scrapes]
    assert len(set(counted)) == 1, counted  # whichever process answered the scrape
    assert counted[0] == made, counted  # every request
