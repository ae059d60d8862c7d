"""Every periodic job the code relies on is scheduled in beat, and every beat entry runs a registered task."""

from __future__ import annotations

import re

from django.conf import settings

from config.celery import app


def _project_tasks() -> dict:
    app.loader.import_default_modules()  # every app's tasks module (autodiscovery)
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def _scheduled() -> dict[str, dict]:
    return {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def test_every_task_declared_periodic_has_a_beat_entry():
    periodic = {name for name, task in _project_tasks().items() if task.periodic}
    assert {"integrations.sweep", "billing.expire_trials", "tenants.refill_standby_pool"} <= periodic
    missing = periodic - set(_scheduled())
    assert not missing, f"declared periodic=True but not in CELERY_BEAT_SCHEDULE: {sorted(missing)}"


def test_every_beat_entry_names_a_registered_periodic_task():
    tasks = _project_tasks()
    for entry_name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        task = tasks.get(entry["task"])
        assert task is not None, f"beat entry {entry_name!r} names no registered task: {entry['task']!r}"
        assert task.periodic, f"{entry['task']} is run by beat: declare it periodic=True"
        assert 0 < float(entry["schedule"]) <= 3600


def test_a_task_that_says_beat_runs_it_is_declared_periodic():
    """Documentation is not a schedule: a task whose docstring says beat runs it must be declared (and so
    scheduled, by the first test)."""
    for name, task in _project_tasks().items():
        if re.search(r"\bbeat\b", task.__doc__ or "", re.IGNORECASE):
            assert task.periodic, f"{name}'s docstring says beat runs it; declare it periodic=True"


def test_the_webhook_sweep_runs_every_minute_by_default():
    assert _scheduled()["integrations.sweep"]["schedule"] <= 60
