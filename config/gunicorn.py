"""How gunicorn serves the API: the Dockerfile, compose.yaml and scripts/run start it with ``-c config/gunicorn.py``
(not ./gunicorn.conf.py, which gunicorn would load for every server started in the repository, benchmarks too).

Threaded workers (gthread), so slow clients cannot starve the API. A client that sends its request slowly
occupies one thread, not a whole worker process; a kept-alive connection between requests occupies none, nor
does a connection that sent nothing for 5 s (gunicorn then waits for its bytes in the worker's event loop, and
closes it after ``keepalive`` seconds); the worker's heartbeat does not depend on any request, so no worker is
killed because of a slow client. ``WEB_CONCURRENCY`` x ``WEB_THREADS`` requests are served side by side (16
by default); with three sync workers three slow clients were enough to stop the API
(tests/faults/test_slow_clients.py measures both). A process accepts connections whether or not it has a free
thread, and the kernel spreads them unevenly, so count on ``WEB_THREADS`` - 1 slow clients in all, not on
``WEB_CONCURRENCY`` x ``WEB_THREADS``; beyond that, and facing the internet, put a buffering proxy (a load
balancer or nginx) in front, as for any WSGI server.

Every thread keeps its own PostgreSQL connection (``DB_CONN_MAX_AGE``): size ``max_connections`` for
processes x threads.

Metrics: every worker process keeps its own counters, so a scrape answered by one of them would see a part.
Prometheus' client adds them up from files in ``PROMETHEUS_MULTIPROC_DIR`` (config/metrics.py): a fresh directory
per server (``var/prometheus/<master pid>`` unless given; those of servers no longer running are removed), emptied when
the server starts, each dead worker's files marked when it exits.

Each request is logged once by the application (config/log.py: request id, organization, route, status, duration),
so gunicorn's own access line is off.
"""

import os
import shutil
from pathlib import Path


def _running(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def on_starting(server) -> None:
    """Before any worker is forked: the metrics directory, empty (a previous server's files would count as this
    one's), named in the environment the workers inherit (prometheus_client reads it when they import it)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    servers = Path(__file__).resolve().parent.parent / "var" / "prometheus"
    directory = Path(given) if given else servers / str(os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    if not given and servers.is_dir():
        for stale in servers.iterdir():
            if stale != directory and not _running(stale.name):
                shutil.rmtree(stale, ignore_errors=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


wsgi_app = "config.wsgi"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "8"))
# Seconds a worker may go without a heartbeat before it is restarted (a request does not block the heartbeat).
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = timeout
# Seconds an idle kept-alive connection (or one that never sent its request) is kept.
keepalive = 5
accesslog = None
