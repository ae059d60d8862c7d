"""``config.memory.fewer_collections``: the youngest generation grows past a batch before it is collected, for the
block only."""

import gc

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
