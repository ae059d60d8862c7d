"""Benchmark of webhook delivery from the outbox, by real Celery workers, against a plain signed-POST loop.

    .venv/bin/python bench/webhooks.py [--events 10000] [--per-commit 10] [--workers 2] [--keep]

It creates its own database (``crm_bench_webhooks``, dropped first if it exists, and at the end unless
``--keep``), migrates the shared schema, provisions one organization on the Enterprise plan
(``bench/common.py``) and gives it one endpoint subscribed to every event, pointing at a receiver on
127.0.0.1 (a separate process: a threaded ``http.server`` that answers 204 and notes when each webhook-id
first arrived). Redis database 11 (``BENCH_REDIS_URL``) is the broker and cache, flushed at the start and
the end.

Product: Celery workers started with the project's settings (``acks_late``, prefetch 1, production mode,
``--workers`` prefork processes) consume one queue. The benchmark records ``--events`` outbox events with
``integrations.outbox.record``, ``--per-commit`` to a transaction, as services do; each commit queues the
relay (debounced), the relay creates the deliveries and queues one delivery task each. Reported: deliveries
per second from the first commit to the last arrival, and the delay from each event's commit to its arrival
(p50, p99, max).

Baseline, same run, same receiver: ``--workers`` processes POST the same number of signed bodies in a loop
(keep-alive session, no database, no broker): the cost of HTTP and signing alone. The ratio says what the
outbox, the broker, the row locks and the delivery log cost on top of that.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import common

DB_NAME = "crm_bench_webhooks"
SLUG = "bench-webhooks"
QUEUE = "bench-webhooks"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


def _configure() -> None:
    """Production settings on the benchmark database, real Celery (not eager) on Redis database 11; Django set up."""
    common.configure(
        DB_NAME,
        redis_url=REDIS_URL,
        eager=False,
        # The receiver is local: allow loopback targets (once settings read it from the environment; until then
        # _allow_loopback() sets it in each process).
        extra={"CELERY_TASK_DEFAULT_QUEUE": QUEUE, "WEBHOOK_ALLOW_LOOPBACK": "1"},
    )


def _allow_loopback() -> None:
    from django.conf import settings

    settings.WEBHOOK_ALLOW_LOOPBACK = True


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


# --- the receiver (its own process) ---


def _receiver_main(port_out, ready) -> None:
    arrivals: dict[str, float] = {}
    samples: list[tuple[dict, bytes]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            now = time.time()
            webhook_id = self.headers.get("webhook-id", "")
            with lock:
                arrivals.setdefault(webhook_id, now)
                if len(samples) < 20:
                    samples.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            with lock:
                if self.path == "/reset":
                    arrivals.clear()
                    samples.clear()
                    data = b"{}"
                else:
                    data = json.dumps(
                        {
                            "count": len(arrivals),
                            "arrivals": arrivals if self.path == "/arrivals" else {},
                            "samples": [[h, b.decode()] for h, b in samples] if self.path == "/arrivals" else [],
                        }
                    ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.value = server.server_address[1]
    ready.set()
    server.serve_forever()


def _receiver_get(port: int, path: str) -> dict:
    import requests

    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=30).json()


def _wait_count(port: int, count: int, timeout: float) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _receiver_get(port, "/count")["count"] >= count:
            return time.time()
        time.sleep(0.2)
    raise TimeoutError(f"only {_receiver_get(port, '/count')['count']} of {count} arrived in {timeout}s")


# --- the workers ---


def worker_main(concurrency: int, db_reuse: int) -> None:
    """``bench/webhooks.py --worker``: a Celery worker with the project's settings (and loopback allowed)."""
    import django
    from celery.signals import after_setup_logger

    django.setup()
    _allow_loopback()
    if db_reuse:
        from django.conf import settings

        # Celery's Django fixup closes the database connection around every task unless this is set.
        settings.CELERY_DB_REUSE_MAX = db_reuse

    @after_setup_logger.connect
    def _quiet(**kwargs):  # one INFO line per task would cost more than the task
        import logging

        if not os.environ.get("BENCH_TRACE"):
            logging.getLogger("celery.app.trace").setLevel(logging.WARNING)

    from config.celery import app

    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "-Q",
            QUEUE,
            "-n",
            "bench-webhooks@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
    )


def _start_worker(concurrency: int, log: Path, db_reuse: int) -> subprocess.Popen:
    out = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--workers",
            str(concurrency),
            "--db-reuse",
            str(db_reuse),
        ],
        cwd=common.BASE_DIR,
        env=os.environ.copy(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return process
        if process.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace")[-3000:])
        time.sleep(0.2)
    raise TimeoutError("worker did not start")


# --- the baseline ---


def _baseline_main(port: int, secret: str, bodies: list[tuple[str, bytes]]) -> None:
    import requests

    from integrations import signing

    session = requests.Session()
    url = f"http://127.0.0.1:{port}/hooks"
    for msg_id, body in bodies:
        headers = signing.headers(secrets_=[secret], msg_id=msg_id, timestamp=int(time.time()), body=body)
        headers["Content-Type"] = "application/json"
        session.post(url, data=body, headers=headers, timeout=10, allow_redirects=False).raise_for_status()


# --- the run ---


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run(args) -> None:
    _allow_loopback()
    from django.db import connection, transaction
    from django_tenants.utils import tenant_context

    from crm.models import Lead
    from integrations import outbox, services, signing
    from integrations.models import WebhookDelivery
    from rbac.actor import SystemActor

    BENCH = SystemActor("benchmark")  # noqa: N806

    common.migrate()
    organization, _owner, _reps = common.organization(SLUG)

    port_value, ready = multiprocessing.Value("i", 0), multiprocessing.Event()
    receiver = multiprocessing.get_context("fork").Process(target=_receiver_main, args=(port_value, ready), daemon=True)
    connection.close()
    receiver.start()
    ready.wait(10)
    port = port_value.value

    with tenant_context(organization):
        endpoint, secret = services.webhook_endpoint_create(
            url=f"http://127.0.0.1:{port}/hooks", event_types=["*"], actor=None
        )
        lead = Lead.objects.create(name="Benchmark lead")
    connection.close()

    log = Path(args.log_dir) / "bench-webhooks-worker.log"
    worker = _start_worker(args.workers, log, args.db_reuse)
    try:
        # Warm-up: a few deliveries so worker processes have their connections and pools.
        with tenant_context(organization):
            for _ in range(args.workers * 5):
                with transaction.atomic():
                    outbox.record("lead.updated", subject=lead, payload={"id": lead.pk, "changes": {}}, actor=BENCH)
        _wait_count(port, args.workers * 5, 60)
        _receiver_get(port, "/reset")

        # Product: record events, commit, let the workers deliver.
        commits: dict[str, float] = {}
        started = time.time()
        with tenant_context(organization):
            produced = 0
            while produced < args.events:
                size = min(args.per_commit, args.events - produced)
                with transaction.atomic():
                    ids = [
                        outbox.record(
                            "lead.updated",
                            subject=lead,
                            payload={"id": lead.pk, "changes": {"score": [n, n + 1]}},
                            actor=BENCH,
                        ).id
                        for n in range(produced, produced + size)
                    ]
                committed_at = time.time()
                for event_id in ids:
                    commits[f"msg_{event_id.hex}"] = committed_at
                produced += size
                if args.rate:
                    time.sleep(max(0.0, started + produced / args.rate - time.time()))
        produced_in = time.time() - started
        finished = _wait_count(port, args.events, args.timeout)
        arrivals = _receiver_get(port, "/arrivals")
        delays = [(arrivals["arrivals"][key] - commits[key]) * 1000 for key in commits if key in arrivals["arrivals"]]
        product_rate = args.events / (finished - started)

        # Signatures of a sample verify.
        for headers, body in arrivals["samples"]:
            expected = signing.signature(
                secret=secret,
                msg_id=headers["webhook-id"],
                timestamp=int(headers["webhook-timestamp"]),
                body=body.encode(),
            )
            assert expected in headers["webhook-signature"].split(" "), "bad signature"
        with tenant_context(organization):
            stats = {
                "delivered": WebhookDelivery.objects.filter(status="succeeded").count(),
                "attempts": sum(WebhookDelivery.objects.values_list("attempt_count", flat=True)),
            }
        connection.close()
    finally:
        common.stop(worker)

    # Baseline: the same number of signed POSTs, as many loops as worker processes.
    _receiver_get(port, "/reset")
    from integrations.delivery import body_of
    from integrations.models import OutboxEvent

    with tenant_context(organization):
        sample = OutboxEvent.objects.filter(type="lead.updated").order_by("occurred_at").first()
        body = body_of(sample)
    connection.close()
    bodies = [(f"msg_baseline{n:08d}", body) for n in range(args.events)]
    shards = [bodies[index :: args.workers] for index in range(args.workers)]
    context = multiprocessing.get_context("fork")
    loops = [context.Process(target=_baseline_main, args=(port, secret, shard)) for shard in shards]
    baseline_started = time.time()
    for loop in loops:
        loop.start()
    for loop in loops:
        loop.join()
    baseline_finished = _wait_count(port, args.events, 60)
    baseline_rate = args.events / (baseline_finished - baseline_started)
    receiver.terminate()

    reuse = f", CELERY_DB_REUSE_MAX={args.db_reuse}" if args.db_reuse else ""
    print(f"webhooks: {args.events} events, {args.per_commit} per commit, {args.workers} worker processes{reuse}")
    print(f"  produced in {produced_in:.1f} s ({args.events / produced_in:.0f} events/s committed)")
    print(
        f"  product:  {product_rate:8.0f} deliveries/s   ({finished - started:.1f} s from first commit to last arrival)"
    )
    print(
        f"            commit → delivery delay  p50 {statistics.median(delays):.0f} ms   "
        f"p99 {_percentile(delays, 0.99):.0f} ms   max {max(delays):.0f} ms"
    )
    print(f"            {stats['delivered']} deliveries succeeded in {stats['attempts']} attempts")
    print(f"  baseline: {baseline_rate:8.0f} POSTs/s  (signed POST loops, keep-alive, no database or broker)")
    print(f"  ratio product / baseline: {product_rate / baseline_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--per-commit", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (prefork concurrency)")
    parser.add_argument("--rate", type=float, default=0, help="events per second to produce (0: as fast as possible)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--db-reuse",
        type=int,
        default=0,
        help="set CELERY_DB_REUSE_MAX in the workers (keep database connections across tasks); 0: project default",
    )
    parser.add_argument("--log-dir", default="/tmp")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(common.BASE_DIR))
        worker_main(args.workers, args.db_reuse)
        return
    common.recreate_database(DB_NAME)
    _configure()
    _flush_redis()
    try:
        run(args)
    finally:
        _flush_redis()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            common.drop_database(DB_NAME)


if __name__ == "__main__":
    main()
