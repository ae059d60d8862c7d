"""PostgreSQL stopped under a small load, on a cluster of the test's own (a copy of the organization's data):
the API answers 503 ``database_unavailable`` with ``Retry-After`` (never a bare 500), /readyz says so within a
second, and the first request after the restart is served. A tenant task that arrives meanwhile (its schema
cannot be reached) is retried, not dropped: once the database is back it runs, and every event is delivered.
"""

from __future__ import annotations

import http.client
import json
import time

import psycopg
import pytest
from django.db import connection

from .load import Load, phase_line, report
from .processes import PostgresCluster, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

PHASE_SECONDS = 3.0
# The relay task retries with its backoff (a random wait up to 1, 2, 4, 8 … s) until the database answers.
DELIVERED_WITHIN = 40.0


@pytest.fixture
def cluster():
    cluster = PostgresCluster().init().start()
    yield cluster
    cluster.close()


def _readyz(port: int) -> tuple[int, dict, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/readyz")
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body, time.monotonic() - started


def test_postgresql_stopped_under_load(stack, tenant, cluster, receiver):
    schema = tenant.organization.schema_name
    cluster.copy_database(source=connection.settings_dict, schemas=["public", schema], database="crm_faults")
    app = stack(database=cluster.url("crm_faults"))

    def rows(sql: str) -> list:
        with psycopg.connect(cluster.url("crm_faults"), autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            return [row[0] for row in conn.execute(sql).fetchall()]

    load = Load(port=app.api.port, headers=tenant.headers).start()
    try:
        time.sleep(PHASE_SECONDS)  # no worker yet: the relay of these events waits in the broker
        load.phase = "stopped"
        cluster.stop()
        stopped = time.monotonic()
        ready_status, ready_body, ready_seconds = _readyz(app.api.port)
        worker = app.worker(wait=False)  # takes the relay message while the database is down
        wait_until(
            lambda: "integrations.relay_outbox" in worker.output() and "Retry in" in worker.output(),
            timeout=60,
            what=f"the relay task retried\n{worker.output()[-3000:]}",
            interval=0.2,
        )
        time.sleep(max(0.0, stopped + PHASE_SECONDS - time.monotonic()))
        cluster.start()
        restarted = time.monotonic()
        load.phase = "after"
        time.sleep(PHASE_SECONDS)
    finally:
        load.stop()
    outage = restarted - stopped

    acknowledged = load.acknowledged_writes()
    present = set(rows("SELECT name FROM crm_lead"))
    events = {f"msg_{pk.hex}" for pk in rows("SELECT id FROM integrations_outboxevent WHERE type = 'lead.created'")}

    def delivered() -> set[str]:
        return {request.webhook_id for request in receiver.received} & events

    try:
        wait_until(lambda: delivered() == events, timeout=DELIVERED_WITHIN, what="every event delivered", interval=0.2)
    except TimeoutError:
        pass
    delivered_after = time.monotonic() - restarted
    log = worker.output()
    retries = log.count("Retry in")
    after = load.in_phase("after")

    report(
        f"PostgreSQL stopped (pg_ctl stop -m fast) {outage:.1f} s under load (own cluster; 3 clients; 1 gthread x 8)",
        [
            *(phase_line(load.in_phase(phase), phase) for phase in ("before", "stopped", "after")),
            f"  /readyz during the outage: {ready_status} {ready_body.get('down')} in {ready_seconds * 1000:.0f} ms",
            f"  first request after the restart served {load.first_success_after(restarted):.2f} s after it; "
            f"non-2xx after the restart: {sum(1 for a in after if a.status is None or a.status >= 300)}",
            f"  writes acknowledged {len(acknowledged)}, present {len(present & set(acknowledged))}",
            f"  relay task retried {retries} times while the schema was unreachable; "
            f"MissingTenantError: {'MissingTenantError' in log}",
            f"  events written {len(events)}, delivered {len(delivered())}, "
            f"all {delivered_after:.1f} s after the restart (bound {DELIVERED_WITHIN:.0f} s)",
        ],
    )

    outage_answers = load.in_phase("stopped")
    assert not load.unexpected(allowed_503={"database_unavailable"}), [
        (a.phase, a.kind, a.status, a.code) for a in load.unexpected(allowed_503={"database_unavailable"})
    ]
    assert any(answer.code == "database_unavailable" for answer in outage_answers)
    assert all(answer.retry_after == "5" for answer in outage_answers if answer.status == 503)
    assert (ready_status, ready_body["down"]) == (503, ["postgresql"])
    assert ready_seconds < 1.0
    assert after, "requests were made after the restart"
    assert all(answer.status is not None and answer.status < 300 for answer in after), "recovered on the first request"
    assert set(acknowledged) <= present
    assert retries >= 1
    assert "MissingTenantError" not in log
    assert delivered() == events, f"{len(events - delivered())} of {len(events)} events not delivered\n{log[-3000:]}"
