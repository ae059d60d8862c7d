"""Benchmark of the leads list API served by gunicorn, against a bare DRF list view over the same table.

    .venv/bin/python bench/api.py [--leads 100000] [--duration 8] [--rounds 7] [--connections 4] [--profile] [--drop]

Uses its own database (``crm_bench_api``: created when missing, migrated, reused; ``--drop`` removes it at the
end) and one organization on the Enterprise plan (its API rate limits lifted by an override: the counting still
runs) holding ``--leads`` leads (about 30% ``new``, 10 tags, an owner each), written once with ``COPY``.

Product: ``GET /api/v1/leads/?page_size=50&status=new&ordering=-created_at`` as the owner (JWT and
``X-Organization``), on ``gunicorn config.wsgi`` (2 sync workers, production settings, as the image runs it but
without the access log): tenant resolution, authentication, the policy, the rate limit counters, filters,
pagination and ``LeadOutput``.

Baseline, same run, same table, same query string: a bare DRF ``ListAPIView`` with a plain ``ModelSerializer``
and DRF's page-number pagination, no tenancy, authentication, permissions or rate limits
(``bench/baseline_urls.py``, ``bench/baseline_settings.py``), on its own gunicorn started the same way.

Load: ``wrk`` (one thread, ``--connections`` connections) when installed, else Python threads with
``http.client``; a warm-up, then ``--rounds`` rounds of ``--duration`` seconds per server, the two servers back to
back in alternating order. Reported: requests/s, p50 and p99 latency per round and server, the ratio of each round,
and the median of those ratios (what the target is checked on: steady when other work on the machine comes and
goes; on a noisy machine single rounds move by ±15 %, so 7 rounds by default); also the ratio of each server's
best round. ``--profile`` also profiles one product request in-process
(cProfile, and the SQL it runs).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common

DB_NAME = "crm_bench_api"
SLUG = "bench-api"
PATH = "/api/v1/leads/?page_size=50&status=new&ordering=-created_at"
# The target: the product serves the list at least as fast as a bare DRF ListAPIView.
TARGET_RATIO = 1.0
EPOCH = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
STATUSES = (("new", 30), ("contacted", 25), ("qualified", 20), ("unqualified", 15), ("converted", 10))
LEAD_COLUMNS = [
    "name",
    "email",
    "phone",
    "company_name",
    "source",
    "status",
    "score",
    "priority",
    "estimated_value",
    "disqualified_reason",
    "owner_id",
    "custom_fields",
    "created_at",
    "updated_at",
]


# --- the data ---


def seed(leads: int, owner_ids: list[int]) -> bool:
    """``leads`` leads in the organization's schema; False when they were already there."""
    from django.db import connection

    from crm.choices import LeadSource, Priority
    from crm.models import Lead, Tag

    if Lead.objects.count() == leads and Tag.objects.count() == 10:
        return False
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE crm_lead, crm_lead_tags, crm_tag RESTART IDENTITY CASCADE")
    Tag.objects.bulk_create([Tag(name=f"tag-{i}") for i in range(10)])
    rng = random.Random(5)
    statuses = [status for status, weight in STATUSES for _ in range(weight)]
    sources, priorities = ["", *LeadSource.values], Priority.values

    def rows():
        for i in range(leads):
            created = EPOCH + datetime.timedelta(seconds=i)
            status = rng.choice(statuses)
            yield (
                f"Lead {i}",
                f"lead{i}@example{i % 89}.test",
                f"+1 555 {i:07d}",
                f"Company {i % 700}",
                rng.choice(sources),
                status,
                rng.randrange(0, 101),
                rng.choice(priorities),
                f"{rng.randrange(100, 10**7) / 100:.2f}" if i % 3 else None,
                "Budget" if status == "unqualified" else "",
                owner_ids[i % len(owner_ids)],
                "{}",
                created,
                created,
            )

    common.copy_rows("crm_lead", LEAD_COLUMNS, rows())
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_lead_tags (lead_id, tag_id) "
            "SELECT l.id, t.id FROM crm_lead l JOIN crm_tag t ON (l.id + t.id * 3) % 7 = 0"
        )
        cursor.execute("VACUUM ANALYZE")  # the steady state autovacuum keeps: visibility map, statistics
    return True


# --- load ---


def _get(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", PATH, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def load_wrk(port: int, headers: dict[str, str], *, seconds: float, connections: int) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{PATH}"], capture_output=True, text=True, check=True
    ).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _ms(re.search(r"\s50%\s+(\S+)", output).group(1)),
        "p99": _ms(re.search(r"\s99%\s+(\S+)", output).group(1)),
        "requests": requests,
        "failed": int(failed.group(1)) if failed else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def load_python(port: int, headers: dict[str, str], *, seconds: float, connections: int) -> dict:
    """``connections`` threads, each a keep-alive ``http.client`` connection (re-opened when the server closes)."""
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        mine, bad = [], 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while (started := time.perf_counter()) < deadline:
            connection.request("GET", PATH, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            bad += response.status != 200
        connection.close()
        with lock:
            latencies.extend(mine)
            failed[0] += bad

    started = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "requests": len(latencies),
        "failed": failed[0],
        "socket_errors": "",
    }


# --- profile of one request, in-process ---


def profile(organization, headers: dict[str, str]) -> None:
    import cProfile
    import pstats

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    for _ in range(20):
        assert client.get(PATH, **meta).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        client.get(PATH, **meta)
    print(f"\nproduct request in-process: {len(captured)} SQL queries")
    for query in captured:
        print(f"  {float(query['time']) * 1000:7.2f} ms  {query['sql'][:150]}")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(50):
        client.get(PATH, **meta)
    profiler.disable()
    print("\ncProfile of 50 product requests (in-process, no network), by cumulative time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(40)


# --- the run ---


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=8, help="seconds per measured round and server")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk is there")
    parser.add_argument("--profile", action="store_true", help="profile one product request in-process")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    args = parser.parse_args()

    created = common.ensure_database(DB_NAME)
    common.configure(DB_NAME)
    common.migrate()
    from django.db import connections
    from django_tenants.utils import tenant_context

    from identity.services import tokens_for

    organization, owner, reps = common.organization(SLUG, members=3)
    common.lift_rate_limits(organization)
    started = time.perf_counter()
    with tenant_context(organization):
        seeded = seed(args.leads, [owner.pk, *(rep.pk for rep in reps)])
    connections.close_all()
    print(
        f"database {DB_NAME} ({'created' if created else 'reused'}), organization {SLUG} on Enterprise, "
        f"{args.leads:,} leads ({f'written in {time.perf_counter() - started:.1f} s' if seeded else 'reused'})"
    )
    print(common.machine_load())
    use_wrk = shutil.which("wrk") and not args.python_client
    load = load_wrk if use_wrk else load_python
    client_name = "wrk, 1 thread" if use_wrk else "Python threads (http.client)"
    product_headers = {
        "Authorization": f"Bearer {tokens_for(user=owner)['access']}",
        "X-Organization": organization.slug,
    }
    servers = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
            servers["product"] = common.start_gunicorn(
                "config.wsgi", log=Path(tmp) / "product.log", workers=args.workers
            )
            servers["baseline"] = common.start_gunicorn(
                "config.wsgi",
                log=Path(tmp) / "baseline.log",
                workers=args.workers,
                env={
                    "DJANGO_SETTINGS_MODULE": "bench.baseline_settings",
                    "BENCH_BASELINE_SCHEMA": organization.schema_name,
                },
            )
            headers = {"product": product_headers, "baseline": {}}
            bodies = {}
            for name, (_process, port) in servers.items():
                status, body = _get(port, headers[name])
                if status != 200:
                    raise SystemExit(f"{name} answered {status}: {body[:500]!r}")
                bodies[name] = json.loads(body)
            product, baseline = bodies["product"], bodies["baseline"]
            assert list(product) == list(baseline) == ["count", "next", "previous", "results"], product.keys()
            assert len(product["results"]) == len(baseline["results"]) == 50
            assert [r["id"] for r in product["results"]] == [r["id"] for r in baseline["results"]]
            assert {r["status"] for r in product["results"]} == {"new"}
            print(
                f"both answer 200 with the same 50 leads; count: product {product['count']:,}, "
                f"baseline {baseline['count']:,}; {len(json.dumps(product)):,} vs {len(json.dumps(baseline)):,} "
                "bytes of JSON"
            )

            print(
                f"\nload: {client_name}, {args.connections} connections, gunicorn {args.workers} sync workers each, "
                f"{args.duration:g} s per round after a 3 s warm-up"
            )
            for name, (_process, port) in servers.items():
                load(port, headers[name], seconds=3, connections=args.connections)
            results: dict[str, list[dict]] = {"product": [], "baseline": []}
            print(f"{'round':>5} {'server':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'non-2xx':>8}")
            for round_ in range(1, args.rounds + 1):
                for name in ("baseline", "product") if round_ % 2 else ("product", "baseline"):
                    _process, port = servers[name]
                    if name == "product":  # a fresh access token for every round (they live 5 minutes)
                        headers[name]["Authorization"] = f"Bearer {tokens_for(user=owner)['access']}"
                    result = load(port, headers[name], seconds=args.duration, connections=args.connections)
                    results[name].append(result)
                    errors = f"  socket errors: {result['socket_errors']}" if result["socket_errors"] else ""
                    print(
                        f"{round_:5d} {name:10} {result['rps']:8.1f} {result['p50']:8.2f} {result['p99']:8.2f} "
                        f"{result['requests']:9,} {result['failed']:8,}{errors}"
                    )
                    if result["failed"]:
                        raise SystemExit(f"{name}: {result['failed']} answers were not 2xx")
                round_ratio = results["product"][-1]["rps"] / results["baseline"][-1]["rps"]
                print(f"{'':5} ratio product / baseline: {round_ratio:.2f}")
            connections.close_all()
            if args.profile:
                profile(organization, headers["product"])
    finally:
        for process, _port in servers.values():
            common.stop(process)
        connections.close_all()
        if args.drop:
            common.drop_database(DB_NAME)

    ratio = statistics.median(p["rps"] / b["rps"] for p, b in zip(results["product"], results["baseline"], strict=True))
    best = {name: max(runs, key=lambda r: r["rps"]) for name, runs in results.items()}
    print()
    for name in ("product", "baseline"):
        rps, p50, p99 = (statistics.median(r[key] for r in results[name]) for key in ("rps", "p50", "p99"))
        print(
            f"{name:9} median of rounds: {rps:7.1f} req/s, p50 {p50:7.2f} ms, p99 {p99:7.2f} ms; "
            f"best round {best[name]['rps']:.1f} req/s"
        )
    print(
        f"ratio product / baseline: {ratio:.2f} (median of rounds); best round / best round: "
        f"{best['product']['rps'] / best['baseline']['rps']:.2f}"
    )
    common.check(f"leads list / bare DRF ListAPIView >= {TARGET_RATIO}", ratio >= TARGET_RATIO, f"{ratio:.2f}")
    sys.stdout.flush()
    common.finish()


if __name__ == "__main__":
    main()
