"""How long jobs and server processes keep CPython's cyclic garbage collector from costing more than their work.

CPython collects its youngest generation each time 700 more container objects (lists, dicts, instances,
memoryviews...) are alive than at the last collection. A job that keeps thousands of them alive at once (a batch
of rows) has them outlive two collections and reach the oldest generation; every few batches a full collection then
walks them and every object of the process (Django's, the job's) to free almost nothing.
- In an import of 100,000 contacts: 12 full collections, 0.9 s of the client's 3.2 s of CPU, 69 objects freed.
- In a CSV export of 100,000 rows, whose pieces were lists of 2,000 lines: 0.35 s of CPU instead of 0.06 s, the
  endpoint at 0.55x PostgreSQL's own ``COPY`` of the query.

So, first, a job does not keep what it does not need: the export writes each line into its piece's buffer as it
comes (``crm.exports``). Where a batch must be held (an import decides and writes 2,000 rows at once),
:func:`fewer_collections` lets the youngest generation grow past a batch before it is collected, for the block only:
a batch's objects are freed by reference counting when the batch ends, before a collection reaches them. Cycles are
still collected, a few times a batch instead of dozens, so memory stays flat (decision 0020).

A server process holds what it loaded for as long as it lives: modules, classes, URL patterns, settings, some
260,000 objects in a web worker. Every full collection walked them all, 120-230 ms during which the process's
other threads waited too, about once every thousand requests. :func:`freeze_loaded` puts them out of the
collector's reach once the process has loaded the application (``config/gunicorn.py``, ``config/celery.py``): a
full collection then walks what requests and tasks made, 4 ms.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fewer_collections(young: int) -> Iterator[None]:
    """The block runs with the youngest generation collected every ``young`` new objects (never more often than
    CPython's default); the thresholds are put back after, whatever happens. The thresholds are the process's:
    meant for a job that has its process to itself while it runs (a Celery task in a worker's child)."""
    before = gc.get_threshold()
    gc.set_threshold(max(young, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def freeze_loaded() -> None:
    """Every object alive now, after a collection, is left out of every later one (``gc.freeze``): for a process that
    has loaded the application and keeps it to the end."""
    gc.collect()
    gc.freeze()
