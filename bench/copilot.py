"""Benchmark of the co-pilot's own cost: one message whose answer takes two tool calls, through the whole stack.

    .venv/bin/python bench/copilot.py [--runs 200] [--keep]

It creates its own database (``crm_bench_copilot``, dropped first, and at the end unless ``--keep``), one Enterprise
organization with an owner, a lead with a timeline, and a conversation. The model is the tests' scripted
OpenAI-compatible server on loopback (``tests/assistant/fake_model.py``), answering each message with
``search_records``, then ``get_record``, then a sentence: three model calls per message, through the real ``openai``
client. Requests are made with Django's test ``Client`` in production mode (``DJANGO_DEBUG=0``): tenant
resolution, JWT, the policy, metering, the tool loop, persistence and rendering all run.

Reported: the request's wall time, and the server overhead (wall time minus the time the model server spent
answering, measured on its side), p50 and p99. Target: overhead p50 < 30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import common

DB_NAME = "crm_bench_copilot"
SLUG = "bench-copilot"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args()

    if str(common.BASE_DIR) not in sys.path:
        sys.path.insert(0, str(common.BASE_DIR))
    from tests.assistant.fake_model import FakeModel, Reply

    model = FakeModel()
    common.recreate_database(DB_NAME)
    common.configure(
        DB_NAME,
        extra={"ASSISTANT_BASE_URL": model.base_url, "ASSISTANT_MODEL": "scripted", "ASSISTANT_API_KEY": "bench"},
    )
    from django.db import connection, connections
    from django.test import Client
    from django_tenants.utils import tenant_context

    from crm import services as crm
    from identity.services import tokens_for
    from rbac.actor import SystemActor

    BENCH = SystemActor("benchmark")  # noqa: N806

    try:
        common.migrate()
        organization, owner, _reps = common.organization(SLUG)
        common.lift_rate_limits(organization)
        with tenant_context(organization):
            lead = crm.lead_create(actor=BENCH, name="Acme renewal", email="buyer@acme.test", owner_id=owner.pk)
            for number in range(10):
                crm.activity_create(
                    actor=BENCH, kind="note", subject=f"Note {number}", body="Met. " * 40, lead_id=lead.pk
                )
        connection.set_schema_to_public()
        client = Client()
        headers = {
            "HTTP_AUTHORIZATION": f"Bearer {tokens_for(user=owner)['access']}",
            "HTTP_X_ORGANIZATION": organization.slug,
        }
        conversation = client.post("/api/v1/assistant/conversations/", "{}", content_type="application/json", **headers)
        url = f"/api/v1/assistant/conversations/{conversation.json()['id']}/messages/"
        body = json.dumps({"content": "Tell me about Acme"})

        def one() -> tuple[float, float]:
            model.then(
                Reply(tool_calls=[("search_records", {"query": "acme"})]),
                Reply(tool_calls=[("get_record", {"type": "lead", "id": lead.pk})]),
                Reply(text="Acme renewal is a new lead with ten notes."),
            )
            served = len(model.serving)
            started = time.perf_counter()
            response = client.post(url, body, content_type="application/json", **headers)
            wall = time.perf_counter() - started
            assert response.status_code == 201, response.content
            assert len(response.json()["tool_calls"]) == 2
            return wall, wall - sum(model.serving[served:])

        for _ in range(10):  # warm-up
            one()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.enable()
            for _ in range(20):
                one()
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
        samples = [one() for _ in range(args.runs)]
        walls = [wall * 1000 for wall, _overhead in samples]
        overheads = [overhead * 1000 for _wall, overhead in samples]
        print(
            f"one message, two tool calls, three model calls ({args.runs} runs after warm-up); {common.machine_load()}"
        )
        print(f"{'':28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for name, values in (("request wall time", walls), ("server overhead", overheads)):
            p50, p99, mean = percentile(values, 0.5), percentile(values, 0.99), statistics.mean(values)
            print(f"{name:28} {p50:8.2f} {p99:8.2f} {mean:8.2f}")
        p50 = percentile(overheads, 0.5)
        common.check("server overhead p50 < 30 ms", p50 < 30, f"{p50:.2f} ms")
    finally:
        model.close()
        connections.close_all()
        if not args.keep:
            common.drop_database(DB_NAME)
    common.finish()


if __name__ == "__main__":
    main()
