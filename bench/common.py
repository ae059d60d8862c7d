"""Shared set-up of the benchmarks: a database of their own, production settings, one Enterprise organization.

Each benchmark names its database (``crm_bench_<name>``); it is created when missing, migrated
(``migrate_schemas --shared``) and reused by the next run, so dev data is never touched. ``--drop`` removes it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
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


def configure(db_name: str, *, media_root: str | None = None) -> None:
    """Production settings (``DJANGO_DEBUG=0``) on the benchmark database; Django is set up."""
    _, url = database_urls(db_name)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_DEBUG"] = "0"  # no query log, no browsable API
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]
    os.environ["CACHE_KEY_PREFIX"] = db_name
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ["TENANT_STANDBY_POOL_SIZE"] = "0"
    os.environ["LOG_LEVEL"] = "WARNING"
    if media_root:
        os.environ["MEDIA_ROOT"] = media_root
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)


def organization(slug: str, *, members: int = 0):
    """The benchmark's organization on the Enterprise plan, its owner and ``members`` Sales Reps; reused."""
    from billing.services import subscription_start
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
    owner = user(f"owner@{slug}.bench.test", "owner", org)
    reps = [user(f"rep{i}@{slug}.bench.test", "sales_rep", org) for i in range(members)]
    return org, owner, reps


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


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
