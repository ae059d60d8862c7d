"""Real servers of the fault suite, on free loopback ports and in temporary directories, so a test can stop,
kill, freeze (SIGSTOP) and thaw (SIGCONT) them without touching the shared PostgreSQL and Redis.

    redis = RedisServer().start()          # redis-server
    pg = PostgresCluster.from_test_database(schemas=[org.schema_name]).start()   # initdb + pg_ctl + a copy
    api = Gunicorn(env={...}).start()      # the API as the Dockerfile serves it (config/gunicorn.py)
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop_group(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGCONT)  # a frozen process cannot stop
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


class RedisServer:
    """A redis-server of the test's own. ``stop()`` is a SIGTERM (it saves its data on the way out, like
    ``docker stop`` of the compose service); ``freeze()``/``thaw()`` SIGSTOP/SIGCONT it."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="crm-faults-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        command = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "3600 1",
            "--appendonly",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.process = subprocess.Popen(command, start_new_session=True)
        wait_until(lambda: _answers(self.port), timeout=10, what="redis-server")
        return self

    def stop(self) -> None:
        _stop_group(self.process)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(path.split("/")[4]))
    if not found:
        raise RuntimeError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free port). PostgreSQL
    refuses to run as root: as root the server runs as the ``postgres`` user, which owns the directory."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="crm-faults-pg-"))
        self.data = self.dir / "data"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, user="postgres")

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> PostgresCluster:
        self._run(_postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        return self

    def start(self) -> PostgresCluster:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=60"
        )
        log = self.dir / "server.log"
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start")
        return self

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are ended (SIGTERM to the backends), then the server exits."""
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def copy_database(self, *, source: dict, schemas: list[str], database: str) -> None:
        """Copy ``schemas`` of the source database (Django settings of the test database) into ``database``."""
        env = {**os.environ, "PGPASSWORD": source.get("PASSWORD") or ""}
        dump = [
            _postgres_bin("pg_dump"),
            "-h",
            source.get("HOST") or "127.0.0.1",
            "-p",
            str(source.get("PORT") or 5432),
            "-U",
            source["USER"],
            "--no-owner",
            "--no-privileges",
            *[f"--schema={schema}" for schema in schemas],
            source["NAME"],
        ]
        psql = [_postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q"]
        subprocess.run([*psql, "-c", f'CREATE DATABASE "{database}"'], check=True, capture_output=True, env=env)
        dumped = subprocess.run(dump, check=True, capture_output=True, env=env, timeout=120).stdout
        # The dump recreates "public", which every new database already has.
        dumped = dumped.replace(b"CREATE SCHEMA public;", b"")
        restored = subprocess.run(
            [*psql, "-v", "ON_ERROR_STOP=1", "-d", database], input=dumped, capture_output=True, env=env, timeout=120
        )
        if restored.returncode != 0:
            raise RuntimeError(restored.stderr.decode()[-2000:])

    def close(self) -> None:
        try:
            self.stop()
        except Exception:  # already stopped
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Gunicorn:
    """The API served by gunicorn with the project's ``config/gunicorn.py`` (as the Dockerfile does), in
    production mode (``DJANGO_DEBUG=0``), on a free loopback port."""

    def __init__(self, *, env: dict[str, str], log: Path, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.env = env
        self.log = log
        self.args = args
        self.process: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(BASE_DIR / "config" / "gunicorn.py"),
            "--bind",
            f"127.0.0.1:{self.port}",
            *self.args,
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=BASE_DIR, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._ready, timeout=60, what=f"gunicorn\n{self.output()[-3000:]}", interval=0.1)
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        _stop_group(self.process)


def app_environment(*, database_url: str, redis_url: str, broker_url: str, key_prefix: str) -> dict[str, str]:
    """The environment of an API process in production mode against the given services."""
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "fault-suite-secret-0123456789abcdefghijklmnopqrstuvwxyz0123456789",
        # Tokens minted by the test process verify in the API process.
        "JWT_SIGNING_KEY": settings.SIMPLE_JWT["SIGNING_KEY"],
        "SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "CACHE_KEY_PREFIX": key_prefix,
        "TENANT_STANDBY_POOL_SIZE": "0",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TEST_DATABASE_NAME", None)
    return env
