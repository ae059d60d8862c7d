"""Benchmark of the contacts CSV export, through the export endpoint.

    .venv/bin/python bench/export.py [--rows 100000] [--small 10000] [--drop]

Uses its own database (``crm_bench_export``: created when missing, migrated, reused; ``--drop`` removes it at the
end) and one organization on the Enterprise plan holding ``--rows`` contacts (500 companies, 10 tags, about 1.4
tags a contact, an owner each), written once with ``COPY`` and kept while ``--rows`` stays the same.

Product: ``GET /api/v1/exports/contacts/?format=csv`` with Django's test ``Client`` and the owner's JWT, in
production settings: tenant resolution, authentication, the policy, filters and ordering, then
``crm.exports.Export`` and ``crm.exports.csv_chunks`` streamed by a ``StreamingHttpResponse``; the body is
consumed chunk by chunk and thrown away (only the network is missing). All rows, and the first ``--small``
rows (``created_before``, the list's own filter), each in a fresh interpreter: its peak RSS growth over the
export should not depend on the number of rows.

Then the same with three custom fields (text, number, flag) defined and filled on every contact: the export of all
rows and its own floor (``COPY`` of that query); the fields are removed again at the end.

Baselines, measured in the same run: the naive export of Django's documentation (``csv.writer`` into an
``HttpResponse`` over ``Contact.objects.all()`` with ``select_related``/``prefetch_related``, the whole list
and the whole file in memory) for the same two sizes; and the floor, PostgreSQL's ``COPY (the export's own
CSV query) TO STDOUT`` in CSV, in the export's transaction (its settings), read and thrown away.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import quote

import common

DB_NAME = "crm_bench_export"
SLUG = "bench-export"
TARGET_ROWS_PER_SECOND = 20_000
# The target: the endpoint streams at least 0.8x the rows/s of PostgreSQL's COPY of the same query.
TARGET_COPY_RATIO = 0.8
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus", "Zoë"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Wirth"]
TITLES = ["Engineer", "Manager", "Director", "Analyst", "Founder", "Consultant", ""]
# Contact i was created at EPOCH + i seconds: ``created_before`` selects the first rows exactly.
EPOCH = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
CONTACT_COLUMNS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "job_title",
    "company_id",
    "status",
    "lifecycle_stage",
    "source",
    "do_not_contact",
    "owner_id",
    "custom_fields",
    "created_at",
    "updated_at",
]
NAIVE_HEADER = [
    *("id", "first_name", "last_name", "email", "phone", "job_title", "company", "status", "lifecycle_stage"),
    *("source", "do_not_contact", "owner", "tags", "created_at", "updated_at"),
]


def _before(rows: int) -> str:
    return quote((EPOCH + datetime.timedelta(seconds=rows)).isoformat())


# --- the data (parent) ---


def seed(rows: int, owner_ids: list[int]) -> bool:
    """``rows`` contacts in the organization's schema; False when they were already there."""
    from django.db import connection

    from crm.choices import ContactStatus, LeadSource, LifecycleStage
    from crm.models import Company, Contact, Tag

    if Contact.objects.count() == rows and Tag.objects.count() == 10:
        return False
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE crm_contact, crm_contact_tags, crm_company, crm_tag RESTART IDENTITY CASCADE")
    companies = [
        company.pk for company in Company.objects.bulk_create([Company(name=f"Company {i}") for i in range(500)])
    ]
    Tag.objects.bulk_create([Tag(name=f"tag-{i}") for i in range(10)])
    rng = random.Random(11)
    statuses, stages, sources = ContactStatus.values, LifecycleStage.values, ["", *LeadSource.values]

    def contacts():
        for i in range(rows):
            created = EPOCH + datetime.timedelta(seconds=i)
            yield (
                rng.choice(FIRST),
                rng.choice(LAST),
                f"person{i}@example{i % 97}.test",
                f"+1 555 {i:07d}",  # starts with "+": written with a leading quote (formula injection)
                rng.choice(TITLES),
                companies[i % len(companies)] if i % 5 else None,
                rng.choice(statuses),
                rng.choice(stages),
                rng.choice(sources),
                i % 50 == 0,
                owner_ids[i % len(owner_ids)],
                "{}",
                created,
                created,
            )

    common.copy_rows("crm_contact", CONTACT_COLUMNS, contacts())
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_contact_tags (contact_id, tag_id) "
            "SELECT c.id, t.id FROM crm_contact c JOIN crm_tag t ON (c.id + t.id * 3) % 7 = 0"
        )
        cursor.execute("VACUUM ANALYZE")  # the steady state autovacuum keeps: visibility map, statistics
    return True


CUSTOM_FIELDS = [("tier", "text"), ("seats", "number"), ("vip", "boolean")]


def custom_fields(filled: bool) -> None:
    """The organization's contacts with the three ``CUSTOM_FIELDS`` defined and a value in each (``filled``), or
    with none. Vacuumed after, as autovacuum would: the next run reuses the table."""
    from django.db import connection

    from crm.models import CustomField

    CustomField.objects.filter(record_type="contact").delete()
    with connection.cursor() as cursor:
        if filled:
            for key, kind in CUSTOM_FIELDS:
                CustomField.objects.create(record_type="contact", key=key, label=key.title(), type=kind)
            cursor.execute(
                "UPDATE crm_contact SET custom_fields = "
                "jsonb_build_object('tier', 'Tier ' || id % 7, 'seats', id % 13 + 0.25, 'vip', id % 2 = 0)"
            )
        else:
            cursor.execute("UPDATE crm_contact SET custom_fields = '{}' WHERE custom_fields <> '{}'")
        cursor.execute("VACUUM ANALYZE crm_contact")


# --- in a child process ---


def child_export(rows: int, limited: bool) -> dict:
    """The endpoint, in production settings, body consumed chunk by chunk."""
    common.configure(DB_NAME)
    from django.test import Client

    from identity.services import tokens_for

    organization, owner, _reps = common.organization(SLUG)
    client = Client()
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {tokens_for(user=owner)['access']}",
        "HTTP_X_ORGANIZATION": organization.slug,
    }

    def export(query: str) -> tuple[int, int]:
        response = client.get(f"/api/v1/exports/contacts/?format=csv{query}", **headers)
        if response.status_code != 200 or not response.streaming:
            raise SystemExit(f"export answered {response.status_code}: {response.content[:300]!r}")
        lines = size = 0
        for chunk in response.streaming_content:
            lines += chunk.count(b"\n")
            size += len(chunk)
        return lines - 1, size  # the header

    export(f"&created_before={_before(100)}")  # warm-up: imports, connections, caches
    rss_before = common.max_rss_mib()
    started = time.perf_counter()
    exported, size = export(f"&created_before={_before(rows)}" if limited else "")
    seconds = time.perf_counter() - started
    return {
        "rows": exported,
        "bytes": size,
        "seconds": seconds,
        "rss_before_mib": rss_before,
        "rss_after_mib": common.max_rss_mib(),
    }


def _naive_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


def child_naive(rows: int, limited: bool) -> dict:
    """The export of Django's documentation: the whole queryset, then the whole file in an ``HttpResponse``."""
    common.configure(DB_NAME)
    import csv

    from django.http import HttpResponse
    from django_tenants.utils import tenant_context

    from crm.models import Contact

    organization, _owner, _reps = common.organization(SLUG)
    with tenant_context(organization):
        queryset = Contact.objects.select_related("company", "owner").prefetch_related("tags")
        if limited:
            queryset = queryset.filter(created_at__lt=EPOCH + datetime.timedelta(seconds=rows))
        rss_before = common.max_rss_mib()
        started = time.perf_counter()
        response = HttpResponse(content_type="text/csv")
        writer = csv.writer(response)
        writer.writerow(NAIVE_HEADER)
        for contact in queryset:
            writer.writerow(
                [
                    _naive_cell(value)
                    for value in (
                        contact.pk,
                        contact.first_name,
                        contact.last_name,
                        contact.email,
                        contact.phone,
                        contact.job_title,
                        contact.company.name if contact.company else "",
                        contact.status,
                        contact.lifecycle_stage,
                        contact.source,
                        contact.do_not_contact,
                        contact.owner.email if contact.owner else "",
                        ", ".join(tag.name for tag in contact.tags.all()),
                        contact.created_at,
                        contact.updated_at,
                    )
                ]
            )
        body = response.content
        seconds = time.perf_counter() - started
    return {
        "rows": body.count(b"\n") - 1,
        "bytes": len(body),
        "seconds": seconds,
        "rss_before_mib": rss_before,
        "rss_after_mib": common.max_rss_mib(),
    }


def child_copy() -> dict:
    """The floor: ``COPY`` of the export's own CSV query (the endpoint's ordering, its cells rendered by PostgreSQL)
    to STDOUT in the export's transaction (same settings), read and dropped."""
    common.configure(DB_NAME)
    from django.db import connection
    from django_tenants.utils import tenant_context

    from crm import exports
    from crm.models import Contact

    organization, _owner, _reps = common.organization(SLUG)
    with tenant_context(organization), exports.export_transaction(), connection.cursor() as cursor:
        export = exports.Export(Contact.objects.order_by("last_name", "first_name", "pk"), "contact")
        sql, params = export.csv_queryset.query.sql_with_params()
        started = time.perf_counter()
        size = lines = 0
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", params) as copy:
            for chunk in copy:
                size += len(chunk)
                lines += bytes(chunk).count(b"\n")
        seconds = time.perf_counter() - started
    return {"rows": lines - 1, "bytes": size, "seconds": seconds}


# --- the parent ---


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="contacts in the organization, all exported")
    parser.add_argument("--small", type=int, default=10_000, help="a smaller export: memory must not grow")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--limited", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.mode == "export":
            result = child_export(args.rows, args.limited)
        elif args.mode == "naive":
            result = child_naive(args.rows, args.limited)
        else:
            result = child_copy()
        print(json.dumps(result))
        return

    created = common.ensure_database(DB_NAME)
    common.configure(DB_NAME)
    common.migrate()
    from django.db import connections
    from django_tenants.utils import tenant_context

    organization, owner, reps = common.organization(SLUG, members=3)
    started = time.perf_counter()
    with tenant_context(organization):
        seeded = seed(args.rows, [owner.pk, *(rep.pk for rep in reps)])
        custom_fields(filled=False)  # a run stopped early may have left them
    connections.close_all()
    print(
        f"database {DB_NAME} ({'created' if created else 'reused'}), organization {SLUG} on Enterprise, "
        f"{args.rows:,} contacts ({f'written in {time.perf_counter() - started:.1f} s' if seeded else 'reused'})"
    )
    print(common.machine_load())
    script = Path(__file__).resolve()
    sizes = [(args.small, True), (args.rows, False)]
    try:
        results = {}
        for mode in ("export", "naive"):
            for rows, limited in sizes:
                extra = ["--limited"] if limited else []
                results[mode, rows] = common.run_child(script, "--mode", mode, "--rows", str(rows), *extra)
                assert results[mode, rows]["rows"] == rows, (mode, results[mode, rows])
        floor = common.run_child(script, "--mode", "copy")
        assert floor["rows"] == args.rows, floor
        with tenant_context(organization):
            custom_fields(filled=True)
        connections.close_all()
        try:
            custom = common.run_child(script, "--mode", "export", "--rows", str(args.rows))
            custom_floor = common.run_child(script, "--mode", "copy")
        finally:
            with tenant_context(organization):
                custom_fields(filled=False)
            connections.close_all()
        assert custom["rows"] == custom_floor["rows"] == args.rows, (custom, custom_floor)
    finally:
        if args.drop:
            common.drop_database(DB_NAME)

    print(f"\n{'contacts CSV':38} {'rows':>9} {'MiB':>6} {'seconds':>8} {'rows/s':>9} {'peak RSS +MiB':>14}")
    names = {"export": "export endpoint (streamed)", "naive": "baseline: naive, all in memory"}
    for (mode, rows), result in results.items():
        growth = result["rss_after_mib"] - result["rss_before_mib"]
        print(
            f"{names[mode]:38} {rows:9,} {result['bytes'] / 2**20:6.1f} {result['seconds']:8.2f} "
            f"{rows / result['seconds']:9,.0f} {growth:14.1f}"
        )
    for label, result in [
        ("floor: COPY (same query) TO STDOUT", floor),
        ("with 3 custom fields: export endpoint", custom),
        ("with 3 custom fields: floor, COPY", custom_floor),
    ]:
        print(
            f"{label:38} {result['rows']:9,} {result['bytes'] / 2**20:6.1f} {result['seconds']:8.2f} "
            f"{result['rows'] / result['seconds']:9,.0f}"
        )
    big, naive = results["export", args.rows], results["naive", args.rows]
    small, naive_small = results["export", args.small], results["naive", args.small]
    speed = args.rows / big["seconds"]
    naive_speed = args.rows / naive["seconds"]
    floor_speed = floor["rows"] / floor["seconds"]

    def growth(result: dict) -> float:
        return result["rss_after_mib"] - result["rss_before_mib"]

    print()
    print(f"export / naive: {speed / naive_speed:.2f}x the naive export's rows/s")
    print(f"export / COPY floor: {speed / floor_speed:.2f} ({floor_speed / speed:.1f}x slower than PostgreSQL's CSV)")
    custom_ratio = custom_floor["seconds"] / custom["seconds"]
    print(f"with 3 custom fields, export / COPY floor: {custom_ratio:.2f}")
    print(
        f"peak RSS growth, export: {growth(small):.1f} MiB for {args.small:,} rows, {growth(big):.1f} MiB for "
        f"{args.rows:,} rows; naive: {growth(naive_small):.1f} vs {growth(naive):.1f} MiB"
    )
    common.check(
        f"export >= {TARGET_COPY_RATIO}x COPY's rows/s",
        speed / floor_speed >= TARGET_COPY_RATIO,
        f"{speed / floor_speed:.2f}x",
    )
    common.check(
        f"export with 3 custom fields >= {TARGET_COPY_RATIO}x COPY's rows/s",
        custom_ratio >= TARGET_COPY_RATIO,
        f"{custom_ratio:.2f}x",
    )
    common.check(
        f">= {TARGET_ROWS_PER_SECOND:,} rows/s through the endpoint", speed >= TARGET_ROWS_PER_SECOND, f"{speed:,.0f}"
    )
    sys.stdout.flush()
    common.finish()


if __name__ == "__main__":
    main()
