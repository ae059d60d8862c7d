"""``config.memory``: the youngest generation grows past a batch before it is collected, for the block only
(``fewer_collections``); server processes leave what they loaded out of full collections (``freeze_loaded``)."""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.memory import fewer_collections


def test_a_batch_of_live_objects_is_collected_dozens_of_times_by_default_and_not_at_all_inside_the_block(
    gc_collections,
):
    gc.set_threshold(700, 10, 10)
    gc.collect()
    gc_collections.clear()
    batch = [[row] for row in range(20_000)]  # lists are tracked containers, as a batch's rows and values
    by_default = len(gc_collections)
    del batch
    gc.collect()
    gc_collections.clear()

    with fewer_collections(young=50_000):
        batch = [[row] for row in range(20_000)]
        inside = len(gc_collections)
    del batch

    assert by_default >= 20_000 // 700
    assert inside == 0


def test_the_thresholds_are_put_back_after_the_block_even_when_it_raises(gc_collections):
    gc.set_threshold(700, 10, 10)
    inside = []

    def batch():
        with fewer_collections(young=20_000):
            inside.append(gc.get_threshold())
            raise RuntimeError("a failed batch")

    with pytest.raises(RuntimeError):
        batch()
    assert inside == [(20_000, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def test_the_youngest_generation_is_never_collected_more_often_than_before(gc_collections):
    gc.set_threshold(5_000, 10, 10)
    with fewer_collections(young=1_000):
        assert gc.get_threshold() == (5_000, 10, 10)
    assert gc.get_threshold() == (5_000, 10, 10)


# --- server processes: what they loaded is left out of full collections (in a process of their own) ---

ROOT = Path(__file__).resolve().parent.parent
STATE = """
import gc, json, sys
{start}
state = {{"frozen": gc.get_freeze_count(), "left": len(gc.get_objects()), "views": "crm.api.views" in sys.modules}}
print(json.dumps(state))
"""


def _after(start: str) -> dict:
    """The collector's state in a new process after ``start``."""
    result = subprocess.run(
        [sys.executable, "-c", STATE.format(start=start)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_web_worker_loads_its_urls_then_leaves_what_it_holds_out_of_full_collections():
    state = _after("import config.wsgi, config.gunicorn\nconfig.gunicorn.post_worker_init(None)")
    assert state["views"]  # what the first request would have imported
    assert state["frozen"] > 10 * state["left"]


def test_a_celery_workers_child_leaves_what_it_holds_out_of_full_collections():
    state = _after(
        "import django\nfrom celery.signals import worker_process_init\nfrom config.celery import app\n"
        "django.setup()\napp.loader.import_default_modules()\nworker_process_init.send(sender=None)"
    )
    assert state["frozen"] > 10 * state["left"]
