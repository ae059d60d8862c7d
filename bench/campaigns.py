"""Benchmark of an e-mail campaign end to end against a bare smtplib loop, both to one local SMTP server.

    .venv/bin/python bench/campaigns.py [--recipients 100000] [--keep]

It creates its own database (``crm_bench_campaigns``, dropped first, and at the end unless ``--keep``), provisions
one organization on the Enterprise plan (``bench/common.py``), and copies in ``--recipients`` contacts, 95 % of them
opted in to e-mail on the consent ledger. The SMTP server is aiosmtpd in a process of its own on 127.0.0.1; it
accepts every message and counts them.

Product: a real Celery worker with the project's settings (production mode, ``--runners`` prefork processes,
``CAMPAIGN_RUNNERS`` runner tasks, as a deployment runs them). The benchmark makes a dynamic segment (the contacts
list's filters ``status=active&has_email=true``) and a campaign with a rendered subject and body, then commits
``campaign_schedule`` (the audience counted within reach, the plan's monthly limit checked); its commit queues the
start (the audience evaluated into one delivery row per recipient), which queues the runners: batches claimed with
consent and suppression read in the claim, each message rendered with the safe renderer, built through Django's
mail API with its Message-ID, List-Unsubscribe headers and signed link, sent over the runner's SMTP connection, its
row marked sent. Timed from the scheduling commit to the campaign's completion; the runners' resident memory is
read at 10 % and 100 % of the messages.

Baseline, same run, same server: a loop over the same consenting recipients, each message built with the standard
library (``MIMEText``, the same headers and body) and sent with ``smtplib`` over one connection; no database.

Target: the product at least half the baseline's messages per second, memory flat (the runners' resident memory
grows less than 32 MiB between 10 % and 100 % of the messages). Prints messages/s and the machine's load; exits
non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr
from pathlib import Path

import common

DB_NAME = "crm_bench_campaigns"
QUEUE = "bench-campaigns"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
SLUG = "bench-campaigns"
TARGET_RATIO = 0.5
FLAT_MIB = 32
OPTED_IN_SHARE = 0.95
SUBJECT = "News for {{ contact.first_name }}"
BODY = "Dear {{ contact.full_name }},\n\nHere is what is new at {{ organization.name }} this month.\n\n"


# --- the SMTP server (its own process) ---


def _smtp_main(port_out, ready, count) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with count.get_lock():
                count.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=common.free_port())
    controller.start()
    port_out.send(controller.port)
    ready.set()
    try:
        asyncio.run(asyncio.sleep(10**9))
    finally:
        controller.stop()


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- set-up ---


def _setup(recipients: int) -> None:
    common.recreate_database(DB_NAME)
    import django

    django.setup()
    common.migrate()
    from django.db import connection
    from django_tenants.utils import tenant_context

    org, _owner, _reps = common.organization(SLUG)
    with tenant_context(org):
        now = "2026-01-01 00:00:00+00"
        rows = (
            (f"First{i}", f"Last{i}", f"r{i}@bench.test", "", "", "active", "lead", "", False, "{}", now, now)
            for i in range(recipients)
        )
        columns = [
            "first_name",
            "last_name",
            "email",
            "phone",
            "job_title",
            "status",
            "lifecycle_stage",
            "source",
            "do_not_contact",
            "custom_fields",
            "created_at",
            "updated_at",
        ]
        common.copy_rows("crm_contact", columns, rows)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO campaigns_consentstate (contact_id, channel, status, source, updated_at) "
                "SELECT id, 'email', CASE WHEN id % 20 = 0 THEN 'opted_out' ELSE 'opted_in' END, 'form', now() "
                "FROM crm_contact"
            )
            cursor.execute("ANALYZE")


# --- the product: real Celery workers ---


def _environment(smtp_port: int, runners: int) -> None:
    common.environment(
        DB_NAME,
        redis_url=REDIS_URL,
        eager=False,
        extra={
            "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
            "CAMPAIGN_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_USE_TLS": "0",
            "CAMPAIGN_FROM_EMAIL": "Bench <campaigns@bench.test>",
            "CAMPAIGN_RUNNERS": str(runners),
        },
    )


def worker_main(runners: int) -> None:
    """``bench/campaigns.py --worker``: a Celery worker with the project's settings, one process per runner."""
    sys.path.insert(0, str(common.BASE_DIR))
    import django
    from celery.signals import after_setup_logger

    django.setup()
    from django.conf import settings

    settings.CELERY_DB_REUSE_MAX = 1000  # Celery's Django fixup closes the connection around each task otherwise

    @after_setup_logger.connect
    def _quiet(**kwargs):
        import logging

        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)

    from config.celery import app

    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            f"--concurrency={runners}",
            "-Q",
            QUEUE,
            "-n",
            "bench-campaigns@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ]
    )


def _start_worker(runners: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "--runners", str(runners)],
        cwd=common.BASE_DIR,
        env=os.environ.copy(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    time.sleep(1)
    if process.poll() is not None:
        raise SystemExit(f"worker exited:\n{log.read_text(errors='replace')[-3000:]}")
    return process


def _worker_rss_mib(process: subprocess.Popen) -> float:
    """Resident memory of the worker's pool processes (the runners), added up."""
    total = 0.0
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    except OSError:
        return 0.0
    for pid in children:
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    return total


def _product(worker: subprocess.Popen, count, expected: int) -> dict:
    from django.db import transaction
    from django_tenants.utils import tenant_context

    from crm.campaigns import services
    from crm.campaigns.choices import CampaignStatus, Channel, DeliveryStatus, SegmentKind
    from crm.campaigns.models import Campaign, Delivery
    from rbac.actor import SystemActor
    from tenants.models import Organization

    bench = SystemActor("benchmark")

    org = Organization.objects.get(slug=SLUG)
    with tenant_context(org):
        segment = services.segment_create(
            actor=bench,
            name="Active with e-mail",
            kind=SegmentKind.DYNAMIC,
            filters={"status": ["active"], "has_email": ["true"]},
        )
        campaign = services.campaign_create(
            actor=bench, name="Bench", channel=Channel.EMAIL, segment=segment, subject=SUBJECT, body=BODY
        )
        rss_idle = _worker_rss_mib(worker)
        started = time.perf_counter()
        with transaction.atomic():  # its commit queues the start; the start queues the runners
            services.campaign_schedule(campaign=campaign, actor=bench)
        rss_tenth = None
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            if rss_tenth is None and count.value >= expected / 10:
                rss_tenth = _worker_rss_mib(worker)
            if count.value >= expected:
                status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
                if status == CampaignStatus.COMPLETED:
                    break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        rss_end = _worker_rss_mib(worker)
        campaign.refresh_from_db()
        sent = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENT).count()
        skipped = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SKIPPED).count()
        materialize = (campaign.started_at - campaign.scheduled_at).total_seconds() if campaign.started_at else None
    return {
        "status": campaign.status,
        "recipients": campaign.recipients,
        "sent": sent,
        "skipped": skipped,
        "seconds": elapsed,
        "start_delay": materialize,
        "rss_idle": rss_idle,
        "rss_tenth": rss_tenth or rss_end,
        "rss_end": rss_end,
    }


# --- the baseline ---


def _baseline(smtp_port: int) -> dict:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from tenants.models import Organization

    org = Organization.objects.get(slug=SLUG)
    with tenant_context(org), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.id, c.first_name, c.last_name, c.email FROM crm_contact c JOIN campaigns_consentstate s "
            "ON s.contact_id = c.id AND s.channel = 'email' AND s.status = 'opted_in' ORDER BY c.id"
        )
        rows = cursor.fetchall()
    sender = formataddr((org.name, "campaigns@bench.test"))
    crlf = compat32.clone(linesep="\r\n")
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", smtp_port, timeout=10)
    for pk, first, last, address in rows:
        link = f"http://{SLUG}.localhost/campaigns/unsubscribe/{org.pk}.{pk}.email.1:signature/"
        text = f"Dear {first} {last},\n\nHere is what is new at {org.name} this month.\n\n\n\n--\nUnsubscribe: {link}\n"
        message = MIMEText(text, "plain", "utf-8")
        message["Subject"] = f"News for {first}"
        message["From"] = sender
        message["To"] = address
        message["Message-ID"] = f"<{pk}@bench.test>"
        message["List-Unsubscribe"] = f"<{link}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        smtp.sendmail("campaigns@bench.test", [address], message.as_bytes(policy=crlf))
    smtp.quit()
    return {"sent": len(rows), "seconds": time.perf_counter() - started}


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--runners", type=int, default=2, help="Celery worker processes (CAMPAIGN_RUNNERS)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.runners)
        return

    print(common.machine_load())
    receive, send = multiprocessing.Pipe(duplex=False)
    ready, count = multiprocessing.Event(), multiprocessing.Value("q", 0)
    server = multiprocessing.Process(target=_smtp_main, args=(send, ready, count), daemon=True)
    server.start()
    ready.wait(30)
    port = receive.recv()
    _environment(port, args.runners)
    print(f"setting up {args.recipients:,} contacts ...")
    _setup(args.recipients)
    _flush_redis()
    worker = None
    try:
        baseline = _baseline(port)
        baseline_count, count.value = count.value, 0
        worker = _start_worker(args.runners, Path(tempfile.gettempdir()) / "bench-campaigns-worker.log")
        time.sleep(3)  # the pool is up
        product = _product(worker, count, baseline["sent"])
        product_count = count.value
    finally:
        if worker is not None:
            common.stop(worker)
        server.terminate()
        _flush_redis()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            common.drop_database(DB_NAME)

    base_rate = baseline["sent"] / baseline["seconds"]
    rate = product["sent"] / product["seconds"]
    ratio = rate / base_rate
    growth = product["rss_end"] - product["rss_tenth"]
    print(
        f"recipients {product['recipients']:,}: sent {product['sent']:,}, skipped {product['skipped']:,} (no consent); "
        f"campaign {product['status']}"
    )
    print(
        f"baseline (smtplib loop, one connection): {baseline['sent']:,} messages in {baseline['seconds']:.1f} s = "
        f"{base_rate:,.0f} messages/s (server counted {baseline_count:,})"
    )
    print(
        f"product ({args.runners} runners, schedule → completed): {product['sent']:,} messages in "
        f"{product['seconds']:.1f} s = {rate:,.0f} messages/s (server counted {product_count:,}; sending started "
        f"{product['start_delay'] or 0:.1f} s after scheduling)"
    )
    print(
        f"runner memory: {product['rss_idle']:.0f} MiB idle, {product['rss_tenth']:.0f} MiB at 10 %, "
        f"{product['rss_end']:.0f} MiB at 100 % (growth {growth:.0f} MiB)"
    )
    common.check(f"messages/s >= {TARGET_RATIO}x the smtplib loop", ratio >= TARGET_RATIO, f"{ratio:.2f}x")
    common.check(f"runner memory growth < {FLAT_MIB} MiB", growth < FLAT_MIB, f"{growth:.0f} MiB")
    common.check(
        "every message sent once (server count = sent)",
        product_count == product["sent"] == baseline["sent"],
        f"{product_count:,} counted, {product['sent']:,} sent",
    )
    common.finish()


if __name__ == "__main__":
    main()
