"""Benchmark of the contacts import, end to end through the import service.

    .venv/bin/python bench/import.py [--rows 100000] [--small 20000] [--sample 2000] [--drop]

Uses its own database (``crm_bench_import``: created when missing, migrated, reused; ``--drop`` removes it at the
end) and one organization on the Enterprise plan. For each file size a fresh interpreter generates nothing, it
imports: ``crm.imports.import_job_create`` (the request's checks: size, encoding, header, row count, stored
file) then ``crm.imports.import_run`` (what the Celery task runs: streamed reading, batches, dedupe lookups, bulk
writes, outbox events, progress). The relay of the events to webhooks is another worker's job and is not timed.
Peak memory is the child's ``ru_maxrss`` growth over the import, for two file sizes: it should not grow with the
file.

Baselines, measured in the same run on the same file: a naive per-row loop (validate, create the contact, set
its tags and record its event, one transaction per row, like a per-row service call) on ``--sample`` rows,
extrapolated; and PostgreSQL's ``COPY`` of the raw file into a bare table, the floor of any import. A second floor,
after each round of the large file: the rows that round wrote (contacts, tag links, events) stored again with
``COPY`` in one transaction, indexes and foreign-key checks included: PostgreSQL's own share of the import, which no
import writing these rows can beat on the same machine. The target is out of reach on a machine where that floor is
below it, and the script says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import common

DB_NAME = "crm_bench_import"
SLUG = "bench-import"
# The target, at 100,000 contacts (the default --rows).
TARGET_ROWS_PER_SECOND = 20_000
HEADER = ["first_name", "last_name", "email", "phone", "job_title", "lifecycle_stage", "tags"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Wirth"]
TITLES = ["Engineer", "Manager", "Director", "Analyst", "Founder", "Consultant", ""]
STAGES = ["subscriber", "lead", "opportunity", "customer"]
TAGS = ["newsletter", "webinar", "partner", "trade-show", "inbound", "vip"]


def generate(path: Path, rows: int, *, seed: int = 7, prefix: str = "person") -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as target:
        writer = csv.writer(target)
        writer.writerow(HEADER)
        for i in range(rows):
            tags = "; ".join(rng.sample(TAGS, rng.randrange(0, 3)))
            writer.writerow(
                [
                    rng.choice(FIRST),
                    rng.choice(LAST),
                    f"{prefix}{i}.{rng.randrange(10**6)}@example{i % 97}.test",
                    f"+1 555 {i:07d}",
                    rng.choice(TITLES),
                    rng.choice(STAGES),
                    tags,
                ]
            )


# --- in a child process ---


def _reset(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE crm_contact, crm_contact_tags, crm_tag, crm_importjob, integrations_outboxevent "
            "RESTART IDENTITY CASCADE"
        )


def _quiet_side_effects() -> None:
    """The import queues its task and the outbox relay after commit; here the service is called directly."""
    from crm import tasks
    from integrations import relay

    tasks.import_run_task.apply_async = lambda *args, **kwargs: None  # the bench runs the job itself
    relay.request_relay = lambda **kwargs: None


def child_import(path: Path, media: str, onto: Path | None = None, *, write_floor: bool = False) -> dict:
    common.configure(DB_NAME, media_root=media)
    from django.core.files import File
    from django.db import connection
    from django_tenants.utils import tenant_context

    from crm import imports
    from crm.models import Contact, ImportJob
    from integrations.models import OutboxEvent
    from rbac.access import access_for

    organization, owner, _reps = common.organization(SLUG)
    _quiet_side_effects()
    with tenant_context(organization):
        _reset(connection)
        access = access_for(user=owner, organization=organization)
        if onto is not None:  # the organization holds these contacts already (their import is not timed)
            with open(onto, "rb") as source:
                job = imports.import_job_create(
                    actor=access, upload=File(source, name=onto.name), record_type="contact"
                )
            imports.import_run(job_id=job.pk)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE crm_contact")  # as autovacuum would soon after
        held = Contact.objects.count()
        held_events = OutboxEvent.objects.filter(type="contact.created").count()
        server_cpu = _server_cpu(connection)
        client_before, server_before = _client_cpu(), server_cpu()
        rss_before = common.max_rss_mib()
        started = time.perf_counter()
        with open(path, "rb") as source:
            job = imports.import_job_create(actor=access, upload=File(source, name=path.name), record_type="contact")
        checked = time.perf_counter()
        job = imports.import_run(job_id=job.pk)
        finished = time.perf_counter()
        client_cpu, server_after = _client_cpu() - client_before, server_cpu()
        rss_after = common.max_rss_mib()
        job = ImportJob.objects.get(pk=job.pk)
        result = {
            "rows": job.total_rows,
            "created": job.created_count,
            "errors": job.error_count,
            "status": job.status,
            "contacts": Contact.objects.count() - held,
            "events": OutboxEvent.objects.filter(type="contact.created").count() - held_events,
            "check_seconds": checked - started,
            "run_seconds": finished - checked,
            "seconds": finished - started,
            "client_cpu": client_cpu,
            "server_cpu": None if server_after is None or server_before is None else server_after - server_before,
            "rss_before_mib": rss_before,
            "rss_after_mib": rss_after,
        }
        if write_floor:
            result["write_floor_seconds"], result["write_floor_server_cpu"] = _write_floor(connection, server_cpu)
        _reset(connection)
    return result


# What the import writes, in the order it writes it; the tag links' foreign keys are checked at commit.
WRITTEN = ("crm_contact", "crm_contact_tags", "integrations_outboxevent")


def _write_floor(connection, server_cpu) -> tuple[float, float | None]:
    """Seconds (and PostgreSQL's CPU seconds) to store the rows the import just wrote (its contacts, their tag links,
    their events) again with ``COPY``, in one transaction, into the same tables with their indexes, constraints and
    foreign-key checks. No import that writes these rows can be faster on this machine: PostgreSQL's own share,
    without reading, checking or deciding anything."""
    from django.db import transaction

    with connection.cursor() as cursor:
        data = {}
        for table in WRITTEN:
            with cursor.copy(f"COPY {table} TO STDOUT") as copy:
                data[table] = [bytes(chunk) for chunk in copy]
        cursor.execute(f"TRUNCATE {', '.join(WRITTEN)} CASCADE")
        before = server_cpu()
        started = time.perf_counter()
        with transaction.atomic():
            for table in WRITTEN:
                with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                    for chunk in data[table]:
                        copy.write(chunk)
        seconds = time.perf_counter() - started
        after = server_cpu()
    return seconds, None if before is None or after is None else after - before


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu(connection):
    """A function reading the CPU seconds of this connection's PostgreSQL backend (None when the server is not on
    this machine): with the client's, it shows how much of their work overlapped."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    stat = Path(f"/proc/{pid}/stat")
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float | None:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    return read


def child_naive(path: Path, sample: int) -> dict:
    """Per row: validate, create in its own transaction, set tags, record the event (like a service per row)."""
    common.configure(DB_NAME)
    from django.core.validators import validate_email
    from django.db import connection, transaction
    from django_tenants.utils import tenant_context

    from crm.models import Contact
    from crm.tagging import tags_named
    from integrations import outbox
    from rbac.access import access_for

    organization, owner, _reps = common.organization(SLUG)
    _quiet_side_effects()
    with tenant_context(organization):
        _reset(connection)
        access = access_for(user=owner, organization=organization)
        with open(path, newline="", encoding="utf-8") as source:
            rows = [row for _i, row in zip(range(sample), csv.DictReader(source), strict=False)]
        started = time.perf_counter()
        for row in rows:
            email = row["email"].strip().lower()
            validate_email(email)
            with transaction.atomic():
                contact = Contact.objects.create(
                    first_name=row["first_name"],
                    last_name=row["last_name"],
                    email=email,
                    phone=row["phone"],
                    job_title=row["job_title"],
                    lifecycle_stage=row["lifecycle_stage"],
                    owner_id=owner.pk,
                )
                names = [name.strip() for name in row["tags"].split(";") if name.strip()]
                if names:
                    contact.tags.set(tags_named(names, actor=access))
                outbox.record("contact.created", subject=contact, payload=outbox.snapshot(contact), actor=access)
        seconds = time.perf_counter() - started
        _reset(connection)
    return {"rows": len(rows), "seconds": seconds}


def child_copy(path: Path) -> dict:
    """The floor: COPY of the raw CSV into a bare temporary table."""
    common.configure(DB_NAME)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE copy_floor ({', '.join(f'{name} text' for name in HEADER)})")
        started = time.perf_counter()
        with open(path, "rb") as source, cursor.copy("COPY copy_floor FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM copy_floor")
        rows = cursor.fetchone()[0]
        cursor.execute("DROP TABLE copy_floor")
    return {"rows": rows, "seconds": seconds}


# --- the parent ---


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000, help="a second, smaller file: memory must not grow")
    parser.add_argument("--sample", type=int, default=2_000, help="rows of the naive per-row baseline")
    parser.add_argument(
        "--rounds", type=int, default=3, help="imports of --rows into none held; the median counts (noisy machines)"
    )
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--media", help=argparse.SUPPRESS)
    parser.add_argument("--onto", help=argparse.SUPPRESS)
    parser.add_argument("--write-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        path = Path(args.file)
        if args.mode == "import":
            onto = Path(args.onto) if args.onto else None
            result = child_import(path, args.media, onto, write_floor=args.write_floor)
        elif args.mode == "naive":
            result = child_naive(path, args.sample)
        else:
            result = child_copy(path)
        print(json.dumps(result))
        return

    created = common.ensure_database(DB_NAME)
    common.configure(DB_NAME)
    common.migrate()
    common.organization(SLUG)
    from django.db import connections

    connections.close_all()
    print(f"database {DB_NAME} ({'created' if created else 'reused'}), organization {SLUG} on Enterprise")
    script = Path(__file__).resolve()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            files = {}
            for rows in (args.small, args.rows):
                files[rows] = Path(tmp) / f"contacts-{rows}.csv"
                generate(files[rows], rows)
                size = files[rows].stat().st_size / 2**20
                print(f"generated {rows:,} contacts: {size:.1f} MiB")
            more = Path(tmp) / "more-contacts.csv"  # new e-mail addresses, for an organization that holds contacts
            generate(more, args.small, seed=11, prefix="more")
            media = str(Path(tmp) / "media")
            results = {}
            runs = [
                (f"{args.small:,} into none", args.small, files[args.small], None),
                (f"{args.rows:,} into none", args.rows, files[args.rows], None),
                (f"{args.small:,} into {args.rows:,}", args.small, more, files[args.rows]),
            ]
            rounds: list[dict] = []
            for label, rows, path, onto in runs:
                repeat = max(1, args.rounds) if path == files[args.rows] else 1
                extra = ("--onto", str(onto)) if onto else ("--write-floor",) if path == files[args.rows] else ()
                for _round in range(repeat):
                    result = common.run_child(script, "--mode", "import", "--file", str(path), "--media", media, *extra)
                    assert result["created"] == result["contacts"] == result["events"] == rows, result
                    if repeat > 1:
                        rounds.append(result)
                if rounds and path == files[args.rows]:
                    result = sorted(rounds, key=lambda r: r["seconds"])[len(rounds) // 2]  # the median
                results[label] = (rows, result)
            naive = common.run_child(
                script, "--mode", "naive", "--file", str(files[args.rows]), "--sample", str(args.sample)
            )
            floor = common.run_child(script, "--mode", "copy", "--file", str(files[args.rows]))
    finally:
        if args.drop:
            common.drop_database(DB_NAME)

    print(f"\n{'import of contacts (end to end)':32} {'seconds':>8} {'rows/s':>9} {'check s':>8} {'peak RSS +MiB':>14}")
    for label, (rows, result) in results.items():
        growth = result["rss_after_mib"] - result["rss_before_mib"]
        print(
            f"{label + ' held':32} {result['seconds']:8.2f} {rows / result['seconds']:9,.0f} "
            f"{result['check_seconds']:8.2f} {growth:14.1f}"
        )
    small, big = (result for _rows, result in list(results.values())[:2])
    if rounds:
        times = ", ".join(f"{r['seconds']:.2f}" for r in rounds)
        print(f"{args.rows:,} into none, {len(rounds)} rounds: {times} s (the median above)")
    if big["server_cpu"] is not None:
        overlap = big["client_cpu"] + big["server_cpu"] - big["run_seconds"]
        print(
            f"{args.rows:,} rows, CPU: client {big['client_cpu']:.2f} s, PostgreSQL {big['server_cpu']:.2f} s, "
            f"done at once {max(0.0, overlap):.2f} s of {big['run_seconds']:.2f} s"
        )
    speed = args.rows / big["seconds"]
    floor_rounds = sorted(rounds or [big], key=lambda r: r["write_floor_seconds"])
    floors = [r["write_floor_seconds"] for r in floor_rounds]
    write_floor, write_floor_cpu = floors[len(floors) // 2], floor_rounds[len(floors) // 2]["write_floor_server_cpu"]
    naive_speed = naive["rows"] / naive["seconds"]
    floor_speed = floor["rows"] / floor["seconds"]
    naive_label = f"baseline: naive loop, {naive['rows']:,} rows"
    print(f"{naive_label:32} {naive['seconds']:8.2f} {naive_speed:9,.0f}")
    print(f"{'floor: COPY of the raw file':32} {floor['seconds']:8.2f} {floor_speed:9,.0f}")
    write_label = "floor: the import's writes alone"
    print(f"{write_label:32} {write_floor:8.2f} {args.rows / write_floor:9,.0f}")
    print(
        f"  (its {args.rows:,} contacts, their tag links and events stored again with COPY in one transaction, indexes "
        f"and foreign-key checks included; {len(floors)} rounds: {', '.join(f'{f:.2f}' for f in floors)} s"
        + (f"; PostgreSQL's CPU {write_floor_cpu:.2f} s)" if write_floor_cpu is not None else ")")
    )
    print()
    print(f"import / naive per-row: {speed / naive_speed:.1f}x faster")
    print(f"import / COPY floor: {speed / floor_speed:.2f}x ({floor_speed / speed:.0f}x slower than the bare copy)")
    print(
        f"import / its writes alone: {write_floor / big['seconds']:.2f}x (PostgreSQL's own share of the import's time)"
    )
    if args.rows / write_floor < TARGET_ROWS_PER_SECOND:
        print(
            f"note: on this machine PostgreSQL alone stores these rows at {args.rows / write_floor:,.0f} rows/s, "
            f"below the target whatever the import's client does"
        )
    print(
        f"peak RSS growth: {small['rss_after_mib'] - small['rss_before_mib']:.1f} MiB for {args.small:,} rows, "
        f"{big['rss_after_mib'] - big['rss_before_mib']:.1f} MiB for {args.rows:,} rows "
        f"(process peak {small['rss_after_mib']:.0f} vs {big['rss_after_mib']:.0f} MiB)"
    )
    common.check(
        f">= {TARGET_ROWS_PER_SECOND:,} rows/s end to end at {args.rows:,} contacts",
        speed >= TARGET_ROWS_PER_SECOND,
        f"{speed:,.0f} rows/s",
    )
    sys.stdout.flush()
    common.finish()


if __name__ == "__main__":
    main()
