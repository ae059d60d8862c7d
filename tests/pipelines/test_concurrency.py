"""Concurrent stage moves of one deal, each thread on its own database connection, on committed data.

The data lives in organization A's schema under a pipeline of its own (not the default, so other tests do not
see it); it is created and removed by helper threads, whose connections commit, while the test's own connection
stays in its rolled-back transaction. No ``transactional_db``: it would flush the session's organizations.
"""

from __future__ import annotations

import threading
import traceback
import uuid

import pytest
from django.db import connections
from django_tenants.utils import tenant_context

from integrations.models import OutboxEvent
from pipelines import services
from pipelines.errors import DealAlreadyClosed
from pipelines.models import Deal, Pipeline, Stage, StageChange
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db

THREADS = 4
MOVES_PER_THREAD = 6


def _committed(organization, work):
    """Run ``work`` in the organization's schema on a connection of its own, committed when it returns."""
    result: dict = {}

    def run():
        try:
            with tenant_context(organization):
                result["value"] = work()
        except BaseException as error:  # noqa: BLE001  (re-raised in the caller's thread)
            result["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def committed_deal(tenants):
    organization = tenants["a"]

    def create():
        pipeline = Pipeline.objects.create(name=f"Race {uuid.uuid4().hex[:8]}", is_default=False)
        specs = [("A", 10, "open"), ("B", 20, "open"), ("C", 30, "open"), ("Won", 100, "won"), ("Lost", 0, "lost")]
        Stage.objects.bulk_create(
            [
                Stage(pipeline=pipeline, name=name, probability=p, kind=kind, position=i)
                for i, (name, p, kind) in enumerate(specs)
            ]
        )
        stages = {stage.name: stage for stage in Stage.objects.filter(pipeline=pipeline)}
        deal = services.deal_create(actor=SYSTEM, title="Contested", pipeline=pipeline, owner_id=tenants["owner_a"].pk)
        return pipeline, stages, deal

    pipeline, stages, deal = _committed(organization, create)

    def remove():
        OutboxEvent.objects.filter(subject_type="deal", subject_id=str(deal.pk)).delete()
        Deal.objects.filter(pk=deal.pk).delete()
        Pipeline.objects.filter(pk=pipeline.pk).delete()

    try:
        yield organization, deal, stages
    finally:
        _committed(organization, remove)


def _run(workers):
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def wrap(work):
        try:
            barrier.wait(10)
            work()
        except BaseException as error:  # noqa: BLE001  (reported below)
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrap, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_concurrent_moves_leave_a_consistent_history(committed_deal):
    organization, deal, stages = committed_deal
    cycle = [stages["B"], stages["C"], stages["A"]]

    def mover(offset: int):
        def work():
            with tenant_context(organization):
                for step in range(MOVES_PER_THREAD):
                    target = cycle[(offset + step) % len(cycle)]
                    services.deal_move_stage(deal=Deal(pk=deal.pk), stage=target, actor=SYSTEM)

        return work

    errors = _run([mover(offset) for offset in range(THREADS)])
    assert errors == [], [traceback.format_exception(e) for e in errors]
    with tenant_context(organization):
        changes = list(StageChange.objects.filter(deal_id=deal.pk).order_by("changed_at", "pk"))
        final = Deal.objects.get(pk=deal.pk)
        moved_events = OutboxEvent.objects.filter(
            subject_type="deal", subject_id=str(deal.pk), type="deal.stage_changed"
        ).count()
    # Every recorded move starts where the previous one ended, and the deal is where the last one left it.
    assert changes[0].from_stage_id is None
    for previous, change in zip(changes, changes[1:], strict=False):
        assert change.from_stage_id == previous.to_stage_id
        assert change.from_stage_id != change.to_stage_id
        assert change.time_in_previous_stage is not None
    assert final.stage_id == changes[-1].to_stage_id
    assert moved_events == len(changes) - 1
    assert len(changes) > THREADS  # the moves really happened, not just one per thread


def test_won_and_lost_at_once_exactly_one_wins(committed_deal):
    organization, deal, _stages = committed_deal
    outcomes: list[str] = []

    def close(kind: str):
        def work():
            with tenant_context(organization):
                try:
                    if kind == "won":
                        services.deal_mark_won(deal=Deal(pk=deal.pk), actor=SYSTEM)
                    else:
                        services.deal_mark_lost(deal=Deal(pk=deal.pk), actor=SYSTEM, reason="Race")
                    outcomes.append(kind)
                except DealAlreadyClosed:
                    outcomes.append("refused")

        return work

    errors = _run([close("won"), close("lost")])
    assert errors == [], [traceback.format_exception(e) for e in errors]
    with tenant_context(organization):
        final = Deal.objects.get(pk=deal.pk)
        closing = StageChange.objects.filter(deal_id=deal.pk, to_stage__kind__in=["won", "lost"]).count()
        events = set(
            OutboxEvent.objects.filter(subject_type="deal", subject_id=str(deal.pk)).values_list("type", flat=True)
        )
    assert sorted(outcomes) in (["refused", "won"], ["lost", "refused"])
    winner = next(o for o in outcomes if o != "refused")
    assert final.status == winner
    assert closing == 1
    assert f"deal.{winner}" in events
    assert ({"deal.won", "deal.lost"} - events) == {"deal.lost" if winner == "won" else "deal.won"}
