"""Benchmark of the co-pilot: its own cost per message, and twenty answers streaming while the API is used.

    .venv/bin/python bench/copilot.py [--runs 200] [--streams 20] [--stream-seconds 10] [--rounds 3]
                                      [--connections 4] [--leads 20000] [--db crm_bench_copilot] [--keep]

It creates its own database (``--db``, ``crm_bench_copilot`` unless given: dropped first, and at the end unless
``--keep``), one Enterprise organization with an owner, a lead with a timeline, and a conversation. The model is
the tests' scripted OpenAI-compatible server on loopback (``tests/assistant/fake_model.py``), through the real
``openai`` client; it runs in a process of its own, as a model server does (in the benchmark's process, its thread
and the product's took turns on the interpreter lock, and the product's waits were counted as the model's time).

Overhead: each message is answered with ``search_records``, then ``get_record``, then a sentence (three model
calls per message). Requests are made with Django's test ``Client`` in production mode (``DJANGO_DEBUG=0``):
tenant resolution, JWT, the policy, metering, the tool loop, persistence and rendering all run. Reported: the
request's wall time, and the server overhead (wall time minus the time the model server spent answering, measured
on its side from each request's arrival to the answer's last byte), p50 and p99. Target: overhead p50 < 30 ms.
``BENCH_PROFILE=1`` also prints a cProfile of 20 messages (``BENCH_PROFILE_SORT``: cumulative, tottime...;
``BENCH_PROFILE_LINES``: 45).

Streams (skipped with ``--streams 0``): the product on gunicorn as production runs it (``-c config/gunicorn.py``:
gthread, ``WEB_CONCURRENCY`` x ``WEB_THREADS`` from the environment, else the config's defaults), ``--leads``
leads written with ``COPY`` (bench/api.py's data), and the leads list
(``GET /api/v1/leads/?page_size=50&status=new&ordering=-created_at``, bench/api.py's Python client,
``--connections`` keep-alive connections) measured for ``--stream-seconds`` without streams, and as long again
while ``--streams`` co-pilot answers stream as Server-Sent Events (``?stream=true``, one conversation each; each
answer is scripted to stream 5 events a second for the window plus 3 s to begin, so all are open throughout);
``--rounds`` rounds, the two phases in alternating order. Reported per round and as medians: req/s, p50 and p99
each way, the ratio with / without (the target is checked on the median of the rounds' ratios), and every stream's
status and events. Targets: every stream answers 200 with all its events; the leads list keeps >= 0.8x its
throughput without the streams.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import api
import common

DB_NAME = "crm_bench_copilot"
SLUG = "bench-copilot"
TARGET_RATIO = 0.8  # the target: the leads list keeps 0.8x its throughput while the streams are open
PIECES_PER_SECOND = 5  # events each scripted answer streams per second
LEAD_IN = 3.0  # seconds the streams get to begin before the leads list is measured; each answer lasts that longer


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Stream(threading.Thread):
    """One co-pilot answer as Server-Sent Events, read to its end: status, events, when it began and ended."""

    def __init__(self, port: int, headers: dict[str, str], conversation: int, began: threading.Semaphore):
        super().__init__(daemon=True)
        self.port, self.headers, self.conversation, self.began = port, headers, conversation, began
        self.status, self.deltas, self.done, self.error = 0, 0, False, ""
        self.started = self.first = self.ended = 0.0

    def run(self) -> None:
        self.started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            connection.request(
                "POST",
                f"/api/v1/assistant/conversations/{self.conversation}/messages/?stream=true",
                body=json.dumps({"content": "Tell me a long story"}),
                headers={**self.headers, "Content-Type": "application/json"},
            )
            response = connection.getresponse()  # the headers come with the first event
            self.first = time.perf_counter()
            self.began.release()
            body = response.read().decode()
            connection.close()
            self.status, self.deltas, self.done = response.status, body.count("event: delta"), "event: done" in body
            if response.status != 200:
                self.error = body[:300]
        except Exception as error:  # reported with the stream's figures
            self.error = repr(error)
            if not self.first:
                self.began.release()
        self.ended = time.perf_counter()


def _request(port: int, method: str, path: str, headers: dict[str, str], body: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers={**headers, "Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, payload


def _serve_model(control) -> None:
    """The scripted model's process: serves on loopback, takes commands from ``control`` until told to close."""
    if str(common.BASE_DIR) not in sys.path:
        sys.path.insert(0, str(common.BASE_DIR))
    from tests.assistant.fake_model import FakeModel

    model = FakeModel()
    control.send(model.base_url)
    while True:
        command, value = control.recv()
        if command == "then":
            model.then(*value)
            control.send(None)
        elif command == "serving":
            control.send(model.serving[value:])
        elif command == "answered":
            control.send(len(model.serving))
        else:
            model.close()
            control.send(None)
            return


class ModelProcess:
    """The scripted model (``tests/assistant/fake_model.py``) in a process of its own, as a model server is: its
    Python never waits for the product's interpreter lock nor makes the product wait for its own, so the time
    subtracted as the model's is all the model's, and what is left is all the product's."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._control, child = context.Pipe()
        self._process = context.Process(target=_serve_model, args=(child,), daemon=True)
        self._process.start()
        self.base_url: str = self._control.recv()

    def then(self, *replies) -> None:
        self._control.send(("then", replies))
        self._control.recv()

    def answered(self) -> int:
        self._control.send(("answered", None))
        return self._control.recv()

    def serving(self, since: int = 0) -> list[float]:
        """Seconds each answer took on the model's side, from the ``since``-th on."""
        self._control.send(("serving", since))
        return self._control.recv()

    def close(self) -> None:
        self._control.send(("close", None))
        self._control.recv()
        self._process.join(5)


def load(port: int, headers: dict[str, str], *, seconds: float, connections: int) -> dict:
    """bench/api.py's Python client in a process of its own: the scripted model and the stream readers run in this
    one, and sharing its interpreter lock would slow the client, not the server."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(api.load_python, port, headers, seconds=seconds, connections=connections).result()


def streams_phase(args, model, reply_class, organization, owner) -> None:
    """The leads list on gunicorn as production runs it, without and with ``--streams`` answers streaming."""
    from django.db import connections
    from django_tenants.utils import tenant_context

    from config import gunicorn as serving
    from identity.services import tokens_for

    started = time.perf_counter()
    with tenant_context(organization):
        api.seed(args.leads, [owner.pk])
    connections.close_all()
    print(f"\n{args.leads:,} leads written in {time.perf_counter() - started:.1f} s; {common.machine_load()}")
    seconds = args.stream_seconds
    pieces = round((seconds + LEAD_IN) * PIECES_PER_SECOND)

    def headers() -> dict[str, str]:  # a fresh access token for every round (they live 5 minutes)
        return {"Authorization": f"Bearer {tokens_for(user=owner)['access']}", "X-Organization": organization.slug}

    def with_streams(port: int, headers: dict[str, str], conversations: list[int]) -> tuple[dict, list[Stream]]:
        model.then(
            *[reply_class(text="word " * pieces, pieces=pieces, delay=1 / PIECES_PER_SECOND) for _ in conversations]
        )
        began = threading.Semaphore(0)
        streams = [Stream(port, headers, conversation, began) for conversation in conversations]
        for stream in streams:
            stream.start()
        deadline, open_ = time.perf_counter() + LEAD_IN, 0
        for _ in streams:  # wait for every stream's first event, or for the lead-in to pass
            if not began.acquire(timeout=max(0.0, deadline - time.perf_counter())):
                break
            open_ += 1
        result = load(port, headers, seconds=seconds, connections=args.connections)
        result["open"] = open_  # streams that had begun when the measurement started
        for stream in streams:
            stream.join()
        return result, streams

    with tempfile.TemporaryDirectory(prefix="bench-copilot-") as tmp:
        process, port = common.start_gunicorn("config.wsgi", log=Path(tmp) / "gunicorn.log", production=True)
        try:
            conversations = []
            for _ in range(args.streams):
                status, body = _request(port, "POST", "/api/v1/assistant/conversations/", headers(), "{}")
                assert status == 201, body
                conversations.append(json.loads(body)["id"])
            status, body = _request(port, "GET", api.PATH, headers())
            assert status == 200, body[:300]
            assert len(json.loads(body)["results"]) == 50
            print(
                f"gunicorn -c config/gunicorn.py: {serving.worker_class}, {serving.workers} processes x "
                f"{serving.threads} threads; leads list {args.connections} connections (Python threads, a process of "
                f"their own), "
                f"{seconds:g} s per phase after a 3 s warm-up; {args.streams} streams of {pieces} events "
                f"({seconds + LEAD_IN:g} s each, {LEAD_IN:g} s to begin before the measurement)"
            )
            load(port, headers(), seconds=3, connections=args.connections)
            results: dict[str, list[dict]] = {"without": [], "with": []}
            all_streams: list[Stream] = []
            print(
                f"{'round':>5} {'streams':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
                f"{'non-200':>8} {'open':>5}"
            )
            for round_ in range(1, args.rounds + 1):
                for phase in ("without", "with") if round_ % 2 else ("with", "without"):
                    if phase == "with":
                        result, streams = with_streams(port, headers(), conversations)
                        all_streams += streams
                    else:
                        result = load(port, headers(), seconds=seconds, connections=args.connections)
                        result["open"] = 0
                    results[phase].append(result)
                    print(
                        f"{round_:5d} {phase:8} {result['rps']:8.1f} {result['p50']:8.2f} {result['p99']:8.2f} "
                        f"{result['requests']:9,} {result['failed']:8,} {result['open']:5d}"
                    )
                round_ratio = results["with"][-1]["rps"] / results["without"][-1]["rps"]
                print(f"{'':5} ratio with / without: {round_ratio:.2f}; {common.machine_load()}")
        finally:
            common.stop(process)
            connections.close_all()

    ratio = statistics.median(w["rps"] / q["rps"] for w, q in zip(results["with"], results["without"], strict=True))
    for phase in ("without", "with"):
        rps, p50, p99 = (statistics.median(r[key] for r in results[phase]) for key in ("rps", "p50", "p99"))
        print(f"{phase:7} streams, median of rounds: {rps:7.1f} req/s, p50 {p50:7.2f} ms, p99 {p99:7.2f} ms")
    complete = [s for s in all_streams if s.status == 200 and s.deltas == pieces and s.done]
    first = sorted((s.first - s.started) * 1000 for s in all_streams if s.first)
    lasted = [s.ended - s.started for s in all_streams]
    print(
        f"streams: {len(complete)} of {len(all_streams)} answered 200 with {pieces} deltas and done; first event "
        f"p50 {percentile(first, 0.5):.0f} ms, max {first[-1]:.0f} ms; "
        f"lasted {min(lasted):.1f}-{max(lasted):.1f} s"
    )
    for stream in all_streams:
        if stream not in complete:
            print(f"  stream: status {stream.status}, {stream.deltas} deltas, done {stream.done} {stream.error}")
    failed = sum(r["failed"] for runs in results.values() for r in runs)
    common.check(
        f"every stream answered 200 with all its events ({args.streams} per round)",
        len(complete) == len(all_streams),
        f"{len(complete)} of {len(all_streams)}",
    )
    common.check("every leads list request answered 200", not failed, f"{failed} not 200")
    common.check(
        f"leads list with {args.streams} streams open >= {TARGET_RATIO}x without",
        ratio >= TARGET_RATIO,
        f"{ratio:.2f}, median of {args.rounds} rounds",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--streams", type=int, default=20, help="co-pilot answers streaming at once (0: no phase)")
    parser.add_argument("--stream-seconds", type=float, default=10, help="seconds per phase of the leads list")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the phases, in alternating order")
    parser.add_argument("--connections", type=int, default=4, help="connections listing leads")
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--db", default=DB_NAME, help=f"the benchmark database (default {DB_NAME}), dropped first")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args()

    if str(common.BASE_DIR) not in sys.path:
        sys.path.insert(0, str(common.BASE_DIR))
    from tests.assistant.fake_model import Reply

    model = ModelProcess()
    common.recreate_database(args.db)
    common.configure(
        args.db,
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
            served = model.answered()
            started = time.perf_counter()
            response = client.post(url, body, content_type="application/json", **headers)
            wall = time.perf_counter() - started
            assert response.status_code == 201, response.content
            assert len(response.json()["tool_calls"]) == 2
            return wall, wall - sum(model.serving(served))

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
            pstats.Stats(profile).sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative")).print_stats(
                int(os.environ.get("BENCH_PROFILE_LINES", "45"))
            )
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
        if args.streams:
            streams_phase(args, model, Reply, organization, owner)
    finally:
        model.close()
        connections.close_all()
        if not args.keep:
            common.drop_database(args.db)
    common.finish()


if __name__ == "__main__":
    main()
