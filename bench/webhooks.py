"""Benchmark of webhook delivery from the outbox, by real Celery workers, against a plain signed-POST loop.

    .venv/bin/python bench/webhooks.py [--rate 100] [--sustained-events 3000] [--events 5000] [--backlog 10000]
                                       [--per-commit 10] [--workers 2] [--keep]

It creates its own database (``crm_bench_webhooks``, dropped first if it exists, and at the end unless
``--keep``), migrates the shared schema, provisions one organization on the Enterprise plan
(``bench/common.py``) and gives it one endpoint subscribed to every event, pointing at a receiver on
127.0.0.1 (a separate process: a threaded ``http.server`` that answers 204 and notes when each webhook-id
first arrived). Redis database 11 (``BENCH_REDIS_URL``) is the broker and cache, flushed at the start and
the end.

Product: Celery workers started with the project's settings (``acks_late``, prefetch 1, production mode,
``--workers`` prefork processes) consume one queue. The benchmark records outbox events with
``integrations.outbox.record``, ``--per-commit`` to a transaction, as services do; each commit queues the
relay (debounced), the relay creates the deliveries and queues one delivery message per batch. Three phases:

- sustained: ``--sustained-events`` at ``--rate`` events/s; the delay from each event's commit to its arrival
  (p50, p99, max);
- burst: ``--events`` as fast as one process commits them, workers running: deliveries/s from the first commit
  to the last arrival, and the delays. When the workers keep up, this is the producer's pace, not theirs;
- backlog: ``--backlog`` events committed while no worker runs, then a worker started: deliveries/s from its
  start to the last arrival, what the product delivers when it is not waiting for the producer.

Baseline, same run, same receiver: ``--workers`` processes POST ``--backlog`` signed bodies in a loop
(keep-alive session, no database, no broker): the cost of HTTP and signing alone. The ratio says what the
outbox, the broker, the row locks and the delivery log cost on top of that.

Targets (decision 0016), printed with the figures; the exit status is 1 when one is missed: backlog
deliveries/s at least 0.25 of the baseline's POSTs/s; p99 commit → delivery under 2 s in the sustained phase;
one delivery and one attempt per event, each webhook-id arriving once.
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

TARGET_RATIO = 0.25  # burst: deliveries/s at least this share of the bare signed-POST loop's POSTs/s
TARGET_P99_MS = 2000.0  # sustained load: commit → delivery p99 below this


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _phase(
    organization, lead, port: int, *, events: int, per_commit: int, rate: float, timeout: float, start_worker=None
) -> dict:
    """Record ``events`` (``per_commit`` to a transaction, at ``rate`` events/s or as fast as possible), wait for
    every arrival; the figures of the phase. With ``start_worker`` (no worker runs meanwhile) the events wait as a
    backlog; the phase is timed from the worker's start (when it reports ready, or the first arrival if earlier)
    to the last arrival: what the product delivers when the producer is not what it waits for."""
    from django.db import transaction
    from django_tenants.utils import tenant_context

    from integrations import outbox
    from rbac.actor import SystemActor

    bench = SystemActor("benchmark")
    _receiver_get(port, "/reset")
    commits: dict[str, float] = {}
    started = time.time()
    with tenant_context(organization):
        produced = 0
        while produced < events:
            size = min(per_commit, events - produced)
            with transaction.atomic():
                ids = [
                    outbox.record(
                        "lead.updated",
                        subject=lead,
                        payload={"id": lead.pk, "changes": {"score": [n, n + 1]}},
                        actor=bench,
                    ).id
                    for n in range(produced, produced + size)
                ]
            committed_at = time.time()
            for event_id in ids:
                commits[f"msg_{event_id.hex}"] = committed_at
            produced += size
            if rate:
                time.sleep(max(0.0, started + produced / rate - time.time()))
    produced_in = time.time() - started
    if start_worker is not None:
        started = start_worker()
    finished = _wait_count(port, events, timeout)
    arrivals = _receiver_get(port, "/arrivals")
    if start_worker is not None:
        started = min(started, *arrivals["arrivals"].values())
    delays = [(arrivals["arrivals"][key] - commits[key]) * 1000 for key in commits if key in arrivals["arrivals"]]
    return {
        "events": events,
        "produced_in": produced_in,
        "seconds": finished - started,
        "rate": events / (finished - started),
        "p50": statistics.median(delays),
        "p99": _percentile(delays, 0.99),
        "max": max(delays),
        "samples": arrivals["samples"],
        "strangers": set(arrivals["arrivals"]) - set(commits),
    }


def _print_phase(title: str, figures: dict, *, backlog: bool = False) -> None:
    print(
        f"  {title}: {figures['events']} events committed in {figures['produced_in']:.1f} s "
        f"({figures['events'] / figures['produced_in']:.0f} events/s)"
    )
    window = "from the worker's start" if backlog else "from first commit"
    print(f"    {figures['rate']:8.0f} deliveries/s   ({figures['seconds']:.1f} s {window} to last arrival)")
    if not backlog:
        print(
            f"    commit → delivery delay  p50 {figures['p50']:.0f} ms   p99 {figures['p99']:.0f} ms   "
            f"max {figures['max']:.0f} ms"
        )


def run(args) -> None:
    """The benchmark: its figures, and each target through ``common.check``."""
    _allow_loopback()
    from django.conf import settings
    from django.db import connection
    from django_tenants.utils import tenant_context

    from crm.models import Lead
    from integrations import outbox, services, signing
    from integrations.conf import setting
    from integrations.models import WebhookAttempt, WebhookDelivery
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

    log_dir = Path(args.log_dir)
    worker = _start_worker(args.workers, log_dir / "bench-webhooks-worker.log", args.db_reuse)
    load_before = common.machine_load()

    def restart_worker() -> float:
        nonlocal worker
        worker = _start_worker(args.workers, log_dir / "bench-webhooks-worker-2.log", args.db_reuse)
        return time.time()

    try:
        # Warm-up: a few deliveries so worker processes have their connections and pools.
        from django.db import transaction

        warm_up = args.workers * 5
        with tenant_context(organization):
            for _ in range(warm_up):
                with transaction.atomic():
                    outbox.record("lead.updated", subject=lead, payload={"id": lead.pk, "changes": {}}, actor=BENCH)
        _wait_count(port, warm_up, 60)

        sustained = None
        if args.rate:
            sustained = _phase(
                organization,
                lead,
                port,
                events=args.sustained_events,
                per_commit=args.per_commit,
                rate=args.rate,
                timeout=args.timeout,
            )
        burst = _phase(
            organization, lead, port, events=args.events, per_commit=args.per_commit, rate=0, timeout=args.timeout
        )
        common.stop(worker)
        backlog = _phase(
            organization,
            lead,
            port,
            events=args.backlog,
            per_commit=args.per_commit,
            rate=0,
            timeout=args.timeout,
            start_worker=restart_worker,
        )

        # Signatures of a sample verify.
        for headers, body in burst["samples"]:
            expected = signing.signature(
                secret=secret,
                msg_id=headers["webhook-id"],
                timestamp=int(headers["webhook-timestamp"]),
                body=body.encode(),
            )
            assert expected in headers["webhook-signature"].split(" "), "bad signature"
        with tenant_context(organization):
            stats = {
                "deliveries": WebhookDelivery.objects.count(),
                "delivered": WebhookDelivery.objects.filter(status="succeeded").count(),
                "attempts": WebhookAttempt.objects.count(),
            }
        connection.close()
    finally:
        common.stop(worker)
    load_after = common.machine_load()

    # Baseline: the same number of signed POSTs, as many loops as worker processes.
    _receiver_get(port, "/reset")
    from integrations.delivery import body_of
    from integrations.models import OutboxEvent

    with tenant_context(organization):
        sample = OutboxEvent.objects.filter(type="lead.updated").order_by("occurred_at").first()
        body = body_of(sample)
    connection.close()
    bodies = [(f"msg_baseline{n:08d}", body) for n in range(args.backlog)]
    shards = [bodies[index :: args.workers] for index in range(args.workers)]
    context = multiprocessing.get_context("fork")
    loops = [context.Process(target=_baseline_main, args=(port, secret, shard)) for shard in shards]
    baseline_started = time.time()
    for loop in loops:
        loop.start()
    for loop in loops:
        loop.join()
    baseline_finished = _wait_count(port, args.backlog, 60)
    baseline_rate = args.backlog / (baseline_finished - baseline_started)
    receiver.terminate()

    events = warm_up + (sustained["events"] if sustained else 0) + burst["events"] + backlog["events"]
    reuse = f", CELERY_DB_REUSE_MAX={args.db_reuse}" if args.db_reuse else ""
    print(
        f"webhooks: {args.per_commit} events per commit, {args.workers} worker processes{reuse}, "
        f"WEBHOOK_DELIVERY_BATCH_SIZE={setting('WEBHOOK_DELIVERY_BATCH_SIZE')}, "
        f"CELERY_WORKER_PREFETCH_MULTIPLIER={settings.CELERY_WORKER_PREFETCH_MULTIPLIER}"
    )
    if sustained:
        _print_phase(f"sustained at {args.rate:.0f} events/s", sustained)
    _print_phase("burst, workers running", burst)
    _print_phase("backlog, committed before the workers start", backlog, backlog=True)
    print(f"  baseline: {baseline_rate:8.0f} POSTs/s  (signed POST loops, keep-alive, no database or broker)")
    ratio = backlog["rate"] / baseline_rate
    print(f"  ratio backlog / baseline: {ratio:.2f}   (burst / baseline: {burst['rate'] / baseline_rate:.2f})")
    print(
        f"  {events} events: {stats['deliveries']} deliveries, {stats['delivered']} succeeded, "
        f"{stats['attempts']} attempts"
    )
    print(f"  before the run: {load_before}; after: {load_after}")

    checks = [
        (f"deliveries/s ≥ {TARGET_RATIO} × the signed-POST loop", ratio >= TARGET_RATIO, f"{ratio:.2f}"),
        (
            "one delivery and one attempt per event, each arrived once",
            stats["deliveries"] == stats["delivered"] == stats["attempts"] == events
            and not burst["strangers"]
            and not backlog["strangers"]
            and not (sustained or {}).get("strangers"),
            f"{events} events, {stats['deliveries']} deliveries, {stats['attempts']} attempts",
        ),
    ]
    if sustained:
        checks.append(
            (
                f"p99 commit → delivery < {TARGET_P99_MS:.0f} ms at {args.rate:.0f} events/s",
                sustained["p99"] < TARGET_P99_MS,
                f"{sustained['p99']:.0f} ms",
            )
        )
    for label, ok, figure in checks:
        common.check(label, ok, figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events of the burst (as fast as possible)")
    parser.add_argument("--backlog", type=int, default=10_000, help="events committed before the workers start")
    parser.add_argument("--per-commit", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (prefork concurrency)")
    parser.add_argument(
        "--rate", type=float, default=100, help="events per second of the sustained phase (0: no sustained phase)"
    )
    parser.add_argument("--sustained-events", type=int, default=3000, help="events of the sustained phase")
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
    common.finish()


if __name__ == "__main__":
    main()
