"""Shared set-up of the benchmarks: a database of their own, production settings, one Enterprise organization.

Each benchmark names its database (``crm_bench_<name>``); it is created when missing, migrated
(``migrate_schemas --shared``) and reused by the next run, so dev data is never touched. ``--drop`` removes it;
benchmarks that build their data on every run start from :func:`recreate_database`.

Also here: bulk inserts with ``COPY`` (:func:`copy_rows`), lifted API rate limits (:func:`lift_rate_limits`), a
fresh interpreter for clean peak memory (:func:`run_child`) and a gunicorn server on a free loopback port
(:func:`start_gunicorn`, :func:`stop`), and the verdicts: :func:`check` prints each target against its figure and
:func:`finish` exits non-zero when one was missed.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-Password-123"


def database_urls(db_name: str) -> tuple[str, str]:
    """(maintenance database URL, benchmark database URL), on DATABASE_URL's server."""
    parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm"))
    return urlunsplit(parts._replace(path="/postgres")), urlunsplit(parts._replace(path=f"/{db_name}"))


def ensure_database(db_name: str) -> bool:
    """Create the benchmark database if missing; True when it was created."""
    import psycopg

    maintenance_url, _ = database_urls(db_name)
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db_name}"')
    return not exists


def drop_database(db_name: str) -> None:
    import psycopg

    maintenance_url, _ = database_urls(db_name)
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def recreate_database(db_name: str) -> None:
    """A fresh, empty benchmark database (for benchmarks that build their data set on every run)."""
    drop_database(db_name)
    ensure_database(db_name)


def environment(
    db_name: str,
    *,
    media_root: str | None = None,
    redis_url: str | None = None,
    eager: bool = True,
    extra: dict[str, str] | None = None,
) -> None:
    """Production settings (``DJANGO_DEBUG=0``) on the benchmark database, in ``os.environ`` (children inherit it).

    Redis is ``redis_url``, else ``BENCH_REDIS_URL``, else database 13 of the local server; the cache keys carry
    the database's name. ``eager``: Celery tasks run in the calling process. ``extra``: more variables.
    """
    _, url = database_urls(db_name)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_DEBUG"] = "0"  # no query log, no browsable API
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ["REDIS_URL"] = redis_url or os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]
    os.environ["CACHE_KEY_PREFIX"] = db_name
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1" if eager else "0"
    os.environ["TENANT_STANDBY_POOL_SIZE"] = "0"
    os.environ["LOG_LEVEL"] = "WARNING"
    if media_root:
        os.environ["MEDIA_ROOT"] = media_root
    os.environ.update(extra or {})
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))


def configure(db_name: str, **options) -> None:
    """:func:`environment` (same options), then Django is set up."""
    environment(db_name, **options)
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)


def organization(slug: str, *, members: int = 0):
    """The benchmark's organization on the Enterprise plan, its owner and ``members`` Sales Reps; reused."""
    from billing.choices import SubscriptionStatus
    from billing.services import subscription_start, subscription_transition
    from identity.models import User
    from identity.services import user_create
    from rbac.services import membership_create
    from tenants.models import Organization
    from tenants.services import organization_create

    def user(email: str, role: str, org):
        found = User.objects.filter(email=email).first()
        if found is None:
            found = user_create(email=email, password=PASSWORD, first_name="Bench", last_name=role)
            membership_create(user=found, organization=org, role=role)
        return found

    org = Organization.objects.filter(slug=slug).first()
    if org is None:
        org = organization_create(name=f"Bench {slug}", slug=slug, use_pool=False)
        subscription_start(organization=org, plan_code="enterprise")
    # Active, not a trial: a reused database would fall back to the free plan when the 14 days are over.
    subscription_transition(organization=org, status=SubscriptionStatus.ACTIVE)
    owner = user(f"owner@{slug}.bench.test", "owner", org)
    reps = [user(f"rep{i}@{slug}.bench.test", "sales_rep", org) for i in range(members)]
    return org, owner, reps


def lift_rate_limits(org, *, value: int = 10**9) -> None:
    """API limits per minute and per day far above what a benchmark sends; the requests are still counted."""
    from billing.features import Limit
    from billing.models import Override
    from billing.services import override_save

    for limit in (Limit.API_CALLS_PER_MINUTE, Limit.API_CALLS_PER_DAY):
        override = Override.objects.filter(organization=org, limit=limit).first() or Override(
            organization=org, limit=limit
        )
        if override.limit_value != value:
            override.limit_value, override.reason = value, "benchmark"
            override_save(override=override, actor=None)


def copy_rows(table: str, columns: list[str], rows: Iterable[Sequence]) -> int:
    """Bulk insert through ``COPY ... FROM STDIN`` into ``table`` of the connection's current schema."""
    from django.db import connection

    count = 0
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def max_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, *args: str) -> dict:
    """Run ``script --child ...`` in a fresh interpreter (its own peak memory); return the JSON it prints last."""
    completed = subprocess.run(
        [sys.executable, str(script), "--child", *args], capture_output=True, text=True, check=False, cwd=BASE_DIR
    )
    if completed.returncode != 0:
        raise SystemExit(f"child failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(
    app: str, *, log: Path, workers: int = 2, production: bool = False, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, int]:
    """``gunicorn app`` on a free loopback port, in its own process group, once it answers; with ``os.environ``
    updated by ``env``. ``workers`` sync workers, no access log; ``production``: as the image runs it instead,
    ``-c config/gunicorn.py`` (gthread, ``WEB_CONCURRENCY`` x ``WEB_THREADS`` from the environment, else the
    config's defaults; ``workers`` is not used). Returns the process and the port; :func:`stop` ends it."""
    port = free_port()
    out = log.open("wb")
    serving = ["-c", "config/gunicorn.py"] if production else ["--workers", str(workers)]
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", *serving],
        cwd=BASE_DIR,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn {app} exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/healthz")
            connection.getresponse().read()  # any answer: a worker has booted
            connection.close()
            return process, port
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise TimeoutError(f"gunicorn {app} did not answer")


def stop(process: subprocess.Popen) -> None:
    """End a process started in its own session (gunicorn, a worker) and its children."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@functools.cache
def python_pace() -> float:
    """Milliseconds this machine takes for a fixed piece of pure Python (a million additions in a loop, best of
    three), measured once: absolute figures from two machines compare only next to their paces."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for number in range(1_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return best * 1000


def machine_load() -> str:
    """The load average against the CPUs (figures taken on a busy machine read low), and the machine's Python pace."""
    one, five, _fifteen = os.getloadavg()
    return (
        f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs; "
        f"Python pace {python_pace():.0f} ms per million loop steps"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


_MISSED: list[str] = []


def check(target: str, ok: bool, figure: str = "") -> bool:
    """Print one target's verdict with its figure (``target: <what>: met (<figure>)``) and remember a miss for
    :func:`finish`. Every benchmark states its targets through this."""
    print(f"target: {target}: {verdict(ok)}" + (f" ({figure})" if figure else ""))
    if not ok:
        _MISSED.append(target)
    return ok


def finish() -> None:
    """The machine's load after the run, then exit: non-zero when :func:`check` saw a target missed."""
    print(f"after the run: {machine_load()}")
    if _MISSED:
        print(f"{len(_MISSED)} target(s) missed: {'; '.join(_MISSED)}")
        sys.exit(1)
