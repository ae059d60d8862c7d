"""Configuration: every environment variable the product reads is in the README's table, and the webhook settings
(integrations/conf.py) come from the environment as that module says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from integrations import conf

from .problems import field_error

ROOT = Path(__file__).resolve().parent.parent
# Python: env("X"), env_int("X"), ... (config/settings.py), os.environ.get("X"), os.environ["X"], os.getenv("X").
PYTHON_READS = re.compile(
    r"""\benv\w*\(\s*["']([A-Z][A-Z0-9_]*)["']|os\.(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)
# Shell: ${X:-default}, ${X-default}, ${X:?message}.
SHELL_READS = re.compile(r"\$\{([A-Z][A-Z0-9_]*):?[-?]")
# Read but not configuration: Django's own pointer to the settings module.
NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE"}


def _code_reads() -> dict[str, str]:
    """Every environment variable the product's code and scripts read, with where. Tests and benchmarks (bench/,
    their own BENCH_* variables) are tools, not the product."""
    found: dict[str, str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".venv/", "tests/", "bench/")) or "/migrations/" in relative:
            continue
        for match in PYTHON_READS.finditer(path.read_text()):
            found.setdefault(match.group(1) or match.group(2), relative)
    for path in [*sorted((ROOT / "scripts").iterdir()), ROOT / ".ci" / "run"]:
        for match in SHELL_READS.finditer(path.read_text()):
            found.setdefault(match.group(1), path.relative_to(ROOT).as_posix())
    for name in conf.DEFAULTS:  # read from the environment by integrations.conf.setting
        found.setdefault(name, "integrations/conf.py")
    return {name: where for name, where in found.items() if name not in NOT_CONFIGURATION}


def _readme_table() -> set[str]:
    """The variables named in the first column of the README's configuration table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_the_readme_lists_every_environment_variable_the_code_reads():
    reads = _code_reads()
    assert {"DATABASE_URL", "WEBHOOK_ALLOW_LOOPBACK", "PORT", "EMAIL_HOST_PASSWORD"} <= set(reads)  # the scan works
    listed = _readme_table()
    missing = {name: where for name, where in reads.items() if name not in listed}
    assert not missing, f"read but not in the README's configuration table: {missing}"
    assert not listed - set(reads), f"in the README's table but read nowhere: {sorted(listed - set(reads))}"


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("WEBHOOK_ALLOW_LOOPBACK", "1", True),
        ("WEBHOOK_ALLOW_LOOPBACK", " off ", False),
        ("WEBHOOK_CONNECT_TIMEOUT", "2.5", 2.5),
        ("WEBHOOK_MAX_RESPONSE_BYTES", "1024", 1024),
        ("WEBHOOK_RETRY_SCHEDULE", "1, 2,30", (1, 2, 30)),
        ("WEBHOOK_RETRY_JITTER", "0", 0.0),
        ("WEBHOOK_REPLAY_MAX_EVENTS", "", conf.DEFAULTS["WEBHOOK_REPLAY_MAX_EVENTS"]),  # blank: the default
    ],
)
def test_webhook_settings_come_from_the_environment(monkeypatch, name, raw, value):
    monkeypatch.setenv(name, raw)
    assert conf.setting(name) == value


def test_a_django_setting_wins_over_the_environment(monkeypatch, settings):
    monkeypatch.setenv("WEBHOOK_READ_TIMEOUT", "99")
    settings.WEBHOOK_READ_TIMEOUT = 3
    assert conf.setting("WEBHOOK_READ_TIMEOUT") == 3


@pytest.mark.django_db
def test_webhook_loopback_follows_the_environment(as_owner_a, monkeypatch):
    """``WEBHOOK_ALLOW_LOOPBACK=1`` in the environment was ignored: a local receiver stayed refused."""
    from django.conf import settings

    assert not hasattr(settings, "WEBHOOK_ALLOW_LOOPBACK")  # as in a deployment: the environment decides
    body = {"url": "http://127.0.0.1:8999/hook", "event_types": ["lead.created"]}

    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "0")
    refused = as_owner_a.post("/api/v1/webhooks/", body)
    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "1")
    allowed = as_owner_a.post("/api/v1/webhooks/", body)

    assert field_error(refused)["code"] == "unsafe_url"
    assert allowed.status_code == 201, allowed.content


def test_a_value_that_does_not_parse_stops_start_up(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "maybe")
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_ALLOW_LOOPBACK='maybe'"):
        conf.setting("WEBHOOK_ALLOW_LOOPBACK")
    with pytest.raises(SystemCheckError, match="integrations.E001"):
        call_command("check")
