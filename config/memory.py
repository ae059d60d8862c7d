"""How a long batch job keeps CPython's cyclic garbage collector from costing more than its work.

CPython collects its youngest generation each time 700 more container objects (lists, dicts, instances...) are
alive than at the last collection. A job that holds a batch of thousands of rows keeps that many alive for the
batch's life: they outlive two collections, reach the oldest generation, and every few batches a full collection
walks them and every object of the process (Django's, the job's) to free almost nothing. In an import of 100,000
contacts that was 12 full collections, 0.9 s of the client's 3.2 s, for 69 objects freed.

:func:`fewer_collections` lets the youngest generation grow past a batch before it is collected, for the block
only: a batch's objects are freed by reference counting when the batch ends, before a collection reaches them.
Cycles are still collected, a few times a batch instead of dozens, so memory stays flat.
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
