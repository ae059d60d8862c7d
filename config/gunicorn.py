"""How gunicorn serves the API: the Dockerfile, compose.yaml and scripts/run start it with ``-c config/gunicorn.py``
(not ./gunicorn.conf.py, which gunicorn would load for every server started in the repository, benchmarks too).

Threaded workers (gthread), so slow clients cannot starve the API. A client that sends its request slowly
occupies one thread, not a whole worker process; a kept-alive connection between requests occupies none, nor
does a connection that sent nothing for 5 s (gunicorn then waits for its bytes in the worker's event loop, and
closes it after ``keepalive`` seconds); the worker's heartbeat does not depend on any request, so no worker is
killed because of a slow client. ``WEB_CONCURRENCY`` x ``WEB_THREADS`` requests are served side by side (64
by default); with three sync workers three slow clients were enough to stop the API
(tests/faults/test_slow_clients.py measures both). A process accepts connections whether or not it has a free
thread, and the kernel spreads them unevenly, so count on ``WEB_THREADS`` - 1 slow clients in all, not on
``WEB_CONCURRENCY`` x ``WEB_THREADS``; beyond that, and facing the internet, put a buffering proxy (a load
balancer or nginx) in front, as for any WSGI server.

Why 32 threads a process: a co-pilot answer streamed as Server-Sent Events holds its thread for as long as the
model talks (seconds), and twenty such streams must leave the rest of the API its pace. With 8 threads (2 x 8 =
16 < 20) the streams took every thread and the leads list waited for them to end: 0.37x its throughput without
them (median of 3 rounds, 0.00 in the worst); with 32, 20 streams fit even when the kernel hands them all to one
process, and the list kept 0.89x-1.02x (two runs; bench/copilot.py, figures and load in bench/README.md). A
thread waiting on the model costs little: no CPU, a stack that is mostly untouched, one PostgreSQL connection.
Throughput on 2 cores is set by the CPU, not by the thread count: more threads do not make CPU-bound requests
faster, they only let waiting ones wait side by side. Threads are started as requests need them (gunicorn's
thread pool), so an idle server does not hold 32. Whatever the co-pilot is asked, a process gives at most
``ASSISTANT_ANSWERS_PER_PROCESS`` (24) answers at once (503 ``assistant_busy`` past it), so 8 threads stay for
the rest of the API.

Every thread that served a request keeps its own PostgreSQL connection (``DB_CONN_MAX_AGE``): size
``max_connections`` for processes x threads (64 by default, PostgreSQL's default is 100) plus the Celery workers,
or lower ``WEB_THREADS`` where no co-pilot streams are expected.

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


def post_worker_init(worker) -> None:
    """A worker has loaded the application: its URLs are loaded too (every view, serializer and schema class, which
    the first request would import), then what it holds is left out of the garbage collector's full collections
    (``config.memory.freeze_loaded``)."""
    from django.urls import get_resolver

    from config.memory import freeze_loaded

    get_resolver().url_patterns  # noqa: B018 (loads the URL configuration)
    freeze_loaded()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


wsgi_app = "config.wsgi"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads per process: co-pilot streams hold one each while the model answers (see above).
threads = int(os.environ.get("WEB_THREADS", "32"))
# Seconds a worker may go without a heartbeat before it is restarted (a request does not block the heartbeat).
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = timeout
# Seconds an idle kept-alive connection (or one that never sent its request) is kept.
keepalive = 5
accesslog = None
