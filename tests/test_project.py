"""The newcomer path and deployment: compose file, production checks, the demo organization, health."""

import io
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django_tenants.utils import tenant_context

from crm.models import Lead
from identity.models import User
from pipelines.models import Pipeline
from tenants.models import Organization

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose package is not installed")
def test_compose_file_is_valid():
    result = subprocess.run(
        ["docker-compose", "-f", "compose.yaml", "config", "--services"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= {"web", "worker", "beat", "postgres", "redis"}


def test_production_settings_pass_the_deploy_checks():
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "a-real-deployment-secret-4f1c9e7a2b8d6f3e0a5c7b9d1e3f5a7c9b2d4f6e",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_local_secret_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "0"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_seed_demo_creates_an_organization_to_log_into_once(api, capsys):
    call_command("seed_demo", "--email", "demo-owner@demo.test", "--operator-email", "ops@demo.test")
    printed = capsys.readouterr().out
    organization = Organization.objects.get(memberships__user__email="demo-owner@demo.test")
    assert organization.slug in printed
    assert "demo-owner@demo.test" in printed
    with tenant_context(organization):
        assert Lead.objects.count() == 3
        assert Pipeline.objects.filter(is_default=True).exists()
    assert User.objects.get(email="ops@demo.test").is_superuser

    response = api.post(
        "/api/v1/auth/token/", {"email": "demo-owner@demo.test", "password": "demo-Password-2026"}, format="json"
    )
    assert response.status_code == 200, response.content
    leads = api.get(
        "/api/v1/leads/",
        HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}",
        HTTP_X_ORGANIZATION=organization.slug,
    )
    assert leads.status_code == 200
    assert leads.json()["count"] == 3

    call_command("seed_demo", "--email", "demo-owner@demo.test", "--operator-email", "ops@demo.test")
    assert Organization.objects.filter(memberships__user__email="demo-owner@demo.test").count() == 1


@pytest.mark.django_db
def test_a_second_seed_prints_the_demo_password_again(api):
    """A second ``scripts/run`` printed "(unchanged; created earlier)" and made a missing operator with that text
    as password."""
    arguments = ["seed_demo", "--email", "again@demo.test", "--operator-email", "ops-again@demo.test"]
    call_command(*arguments, stdout=io.StringIO())
    User.objects.filter(email="ops-again@demo.test").delete()

    second = io.StringIO()
    call_command(*arguments, stdout=second)

    printed = second.getvalue()
    assert "owner password:    demo-Password-2026" in printed
    assert "operator password: demo-Password-2026" in printed
    assert "unchanged" not in printed
    for email in ("again@demo.test", "ops-again@demo.test"):
        response = api.post("/api/v1/auth/token/", {"email": email, "password": "demo-Password-2026"})
        assert response.status_code == 200, response.content

    owner = User.objects.get(email="again@demo.test")
    owner.set_password("another-Password-2027")
    owner.save()
    third = io.StringIO()
    call_command(*arguments, stdout=third)
    assert "owner password:    (changed since" in third.getvalue()
    assert "demo-Password-2026" not in third.getvalue().split("operator")[0]


@pytest.mark.django_db
def test_the_seed_output_has_no_escape_codes_off_a_terminal():
    output = io.StringIO()
    call_command("seed_demo", "--email", "plain@demo.test", "--operator-email", "ops-plain@demo.test", stdout=output)
    assert "Demo organization created" in output.getvalue()
    assert "\x1b" not in output.getvalue()


def _log_line(*, terminal: bool) -> bytes:
    """What ``scripts/lib.sh``'s ``log`` writes to stderr, a pipe or a terminal."""
    command = ["bash", "-c", 'source scripts/lib.sh && log "migrating"']
    if not terminal:
        return subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stderr
    leader, follower = pty.openpty()
    try:
        subprocess.run(command, cwd=ROOT, stderr=follower, stdout=subprocess.DEVNULL, check=True)
        return os.read(leader, 1024)
    finally:
        os.close(leader)
        os.close(follower)


def test_script_logs_have_no_escape_codes_off_a_terminal():
    assert _log_line(terminal=False) == b"==> migrating\n"
    assert b"\x1b[1m==> migrating" in _log_line(terminal=True)  # bold on a terminal still


@pytest.mark.django_db
def test_health_endpoints(api):
    assert api.get("/healthz").status_code == 200
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgresql": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_readyz_names_what_is_down(api, settings):
    closed_port = "redis://127.0.0.1:1/0"  # Django resets its cache handler when CACHES changes
    settings.CACHES = {**settings.CACHES, "control": {**settings.CACHES["control"], "LOCATION": closed_port}}
    response = api.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["down"] == ["redis"]


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_readyz_answers_within_a_second_whatever_hangs(api, settings, monkeypatch):
    """Servers that accept connections and never answer (frozen, SIGSTOP) are reported down in time."""
    import socket
    import time

    from django.db import connection

    frozen = []
    for _ in range(2):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        frozen.append(listener)
    redis_port, postgres_port = (listener.getsockname()[1] for listener in frozen)
    settings.CACHES = {
        **settings.CACHES,
        "control": {**settings.CACHES["control"], "LOCATION": f"redis://127.0.0.1:{redis_port}/0"},
    }
    monkeypatch.setitem(connection.settings_dict, "PORT", postgres_port)  # readyz connects anew; ours stays open
    try:
        started = time.monotonic()
        response = api.get("/readyz")
        elapsed = time.monotonic() - started
    finally:
        for listener in frozen:
            listener.close()
    assert response.status_code == 503
    assert response.json()["down"] == ["postgresql", "redis"]
    assert elapsed < 1.0, f"{elapsed:.2f}s"


def test_the_api_is_served_with_threaded_workers_everywhere():
    """config/gunicorn.py (threaded workers, measured against slow clients in tests/faults/) is what the Dockerfile,
    compose.yaml (through the image) and scripts/run start."""
    namespace: dict = {}
    exec((ROOT / "config" / "gunicorn.py").read_text(), namespace)
    assert namespace["worker_class"] == "gthread"
    assert namespace["workers"] * namespace["threads"] >= 16
    # Twenty co-pilot streams (bench/copilot.py) and more requests fit even when all land on one process.
    assert namespace["threads"] > 20
    # Co-pilot answers never take every thread of a process (503 assistant_busy past their cap).
    assert settings.ASSISTANT_ANSWERS_PER_PROCESS <= namespace["threads"] - 4
    assert '"-c", "config/gunicorn.py"' in (ROOT / "Dockerfile").read_text()
    assert "gunicorn -c config/gunicorn.py" in (ROOT / "scripts" / "run").read_text()
    assert "command:" not in (ROOT / "compose.yaml").read_text().split("\n  web:", 1)[1].split("\n  worker:", 1)[0]
