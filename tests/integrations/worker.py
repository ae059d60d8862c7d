"""Real Celery workers for tests: a subprocess on the test database and the test broker, on a queue of its own.

    def test_something(celery_worker):
        worker = celery_worker(settings={"WEBHOOK_ALLOW_LOOPBACK": True})
        ...
        worker.kill()                      # SIGKILL, as a crash would
        celery_worker()                    # a fresh one on the same queue
        celery_worker.beat()               # celery beat, sending the schedule to the same queue

``env`` overrides the environment of a process (tests/faults/ point workers at a Redis or PostgreSQL of
their own).

Tasks queued by the test process go to the worker's queue (``celery_worker.route(task, ...)``), and Celery is
not eager while the fixture is active. What the worker must read has to be committed (``committed()``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]
# Short visibility timeout and quick restore sweeps: a killed worker's message comes back within seconds.
FAST_REDELIVERY = {"visibility_timeout": 3, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}


@dataclass
class Worker:
    queue: str
    log: Path
    process: subprocess.Popen
    lines_seen: int = 0

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    ready_marker: str = " ready."

    def wait_ready(self, timeout: float = 60.0) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_marker in self.output():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready in {timeout}s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement, connections dropped by the kernel."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class WorkerPool:
    tmp_path: Path
    queue: str = field(default_factory=lambda: f"test-worker-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    workers: list[Worker] = field(default_factory=list)

    def environment(self, overrides: dict, transport: dict) -> dict[str, str]:
        from tests.conftest import RUN_PREFIX, TEST_BROKER_DB, TEST_REDIS_DB, _redis_url

        db = connection.settings_dict
        database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        if db.get("PASSWORD"):
            database_url = database_url.replace(f"//{db['USER']}@", f"//{db['USER']}:{db['PASSWORD']}@")
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": _redis_url(TEST_REDIS_DB),
            "CACHE_KEY_PREFIX": RUN_PREFIX,
            "CELERY_BROKER_URL": _redis_url(TEST_BROKER_DB),
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "TENANT_STANDBY_POOL_SIZE": "0",
            "PYTHONUNBUFFERED": "1",
            "TEST_WORKER_SETTINGS": json.dumps(overrides),
            "TEST_WORKER_TRANSPORT": json.dumps(transport),
        }
        env.pop("TEST_DATABASE_NAME", None)
        return env

    def start(
        self,
        *,
        settings: dict | None = None,
        transport: dict | None = None,
        pool: str = "solo",
        env: dict | None = None,
        wait: bool = True,
    ) -> Worker:
        index = len(self.workers)
        command = [
            "worker",
            f"--pool={pool}",
            "-Q",
            self.queue,
            "-n",
            f"{self.queue}-{index}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        worker = self._spawn(f"worker-{index}", command, settings, transport, env)
        return worker.wait_ready() if wait else worker

    def beat(self, *, settings: dict | None = None, env: dict | None = None) -> Worker:
        """Celery beat with the project's schedule, sending to this pool's queue."""
        index = len(self.workers)
        schedule = self.tmp_path / f"beat-{index}-schedule"
        beat = self._spawn(f"beat-{index}", ["beat", "--schedule", str(schedule)], settings, None, env)
        beat.ready_marker = "beat: Starting..."
        return beat.wait_ready()

    def _spawn(self, name: str, command: list[str], settings, transport, env) -> Worker:
        log = self.tmp_path / f"{name}.log"
        environment = self.environment(settings or {}, FAST_REDELIVERY if transport is None else transport)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tests.integrations.worker_app", *command, "-l", "INFO"],
                cwd=BASE_DIR,
                env={**environment, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(queue=self.queue, log=log, process=process)
        self.workers.append(worker)
        return worker

    def __call__(self, **kwargs) -> Worker:
        return self.start(**kwargs)

    def route(self, *tasks, monkeypatch) -> None:
        """Messages of these tasks sent by the test process go to this pool's queue."""
        for task in tasks:
            monkeypatch.setattr(task, "queue", self.queue, raising=False)
            monkeypatch.setattr(task, "_exec_options", None, raising=False)  # Celery caches routing options

    def logs(self) -> str:
        return "\n".join(f"--- worker {index} ---\n{w.output()[-3000:]}" for index, w in enumerate(self.workers))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        import redis

        from tests.conftest import TEST_BROKER_DB, _redis_url

        client = redis.Redis.from_url(_redis_url(TEST_BROKER_DB), socket_timeout=5)
        client.delete(self.queue, f"_kombu.binding.{self.queue}", f"_kombu.binding_permanent.{self.queue}")


@pytest.fixture
def celery_worker(tmp_path):
    """A factory of real workers on one unique queue; Celery in this process is not eager meanwhile."""
    from config.celery import app

    pool = WorkerPool(tmp_path=tmp_path)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield pool
    finally:
        app.conf.task_always_eager = eager
        pool.close()
