"""Freshness and cost: cached per organization and scope, a change shows on the next request, snapshots taken by
beat catch up and are idempotent, and a report costs the same number of queries whatever the data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import services, tasks
from analytics.models import DailyMetric, SnapshotDay
from crm import services as crm
from pipelines import services as deals
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db

DASHBOARD = [
    "/api/v1/analytics/pipeline/?period=last_30_days",
    "/api/v1/analytics/leads/?period=last_30_days",
    "/api/v1/analytics/activity/?period=last_30_days",
]


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


def _world(history, owner, people, scale: int):
    now = timezone.now()
    for person in people:
        for index in range(scale):
            history.deal(
                owner=person,
                created=now - timedelta(days=20 + index),
                path=[("Needs analysis", now - timedelta(days=15 + index))],
                won=now - timedelta(days=10) if index % 2 else None,
                lost=now - timedelta(days=9) if not index % 2 else None,
            )
            history.deal(owner=person, created=now - timedelta(days=index + 1))
            lead = history.lead(owner=person, created=now - timedelta(days=index + 2))
            history.activity(owner=person, created=now - timedelta(days=index), lead=lead)
            history.activity(
                owner=person, created=now - timedelta(days=index), kind="task", due_at=now - timedelta(days=1)
            )


@pytest.mark.parametrize("url", DASHBOARD + ["/api/v1/analytics/forecast/", "/api/v1/analytics/next-actions/"])
def test_query_count_does_not_grow_with_records_owners_or_days(as_owner_a, org_a, owner_a, member, history, url):
    _world(history, owner_a, [owner_a], 1)
    as_owner_a.get("/api/v1/analytics/measures/")  # warm the authorization cache
    small = _queries(as_owner_a, url)
    rep, _client = member(org_a, "sales_rep")
    other, _client = member(org_a, "sales_rep")
    _world(history, owner_a, [owner_a, rep, other], 4)
    as_owner_a.get("/api/v1/analytics/measures/")  # new members: warm the authorization cache again
    large = _queries(as_owner_a, url)
    assert small == large, url


@pytest.mark.parametrize("url", DASHBOARD)
def test_a_warm_report_costs_one_query(as_owner_a, owner_a, history, url):
    _world(history, owner_a, [owner_a], 2)
    as_owner_a.get(url)
    assert _queries(as_owner_a, url) == 1  # the pipelines' and stages' fingerprint; the rest is cached


def test_a_change_shows_on_the_next_request(as_owner_a, org_a, owner_a, in_tenant, history):
    _world(history, owner_a, [owner_a], 2)
    url = "/api/v1/analytics/pipeline/?period=last_30_days"
    before = as_owner_a.get(url).json()
    assert as_owner_a.get(url).json() == before  # cached
    deal = history.deal(owner=owner_a, amount="50", created=timezone.now())
    assert as_owner_a.get(url).json()["open_deals"]["value"] == before["open_deals"]["value"] + 1
    with in_tenant(org_a):
        deals.deal_mark_won(deal=deal, actor=SYSTEM)
    after = as_owner_a.get(url).json()
    assert after["deals_won"]["value"] == before["deals_won"]["value"] + 1
    with in_tenant(org_a):  # a stage edit records no event: the fingerprint of the stages moves the cache instead
        stage = deal.pipeline.stages.get(name="Qualification")
        deals.stage_update(stage=stage, actor=SYSTEM, probability=90)
    assert as_owner_a.get(url).json()["weighted_value"] != after["weighted_value"]
    leads_url = "/api/v1/analytics/leads/?period=last_30_days"
    count = as_owner_a.get(leads_url).json()["created"]["value"]
    with in_tenant(org_a):
        crm.lead_create(actor=SYSTEM, name="Fresh")
    assert as_owner_a.get(leads_url).json()["created"]["value"] == count + 1


def test_cached_results_are_per_scope(as_owner_a, org_a, owner_a, member, history):
    rep, rep_client = member(org_a, "sales_rep")
    _world(history, owner_a, [owner_a, rep], 2)
    url = "/api/v1/analytics/pipeline/?period=last_30_days"
    everyone = as_owner_a.get(url).json()
    mine = rep_client.get(url).json()
    assert mine["open_deals"]["value"] < everyone["open_deals"]["value"]
    assert as_owner_a.get(url).json() == everyone
    _manager, manager = member(org_a, "manager")
    with CaptureQueriesContext(connection) as captured:
        assert manager.get(url).json() == everyone  # same scope: the Owner's entry serves the Manager
    assert not [
        q for q in captured.captured_queries if "analytics_dailymetric" in q["sql"] or "pipelines_deal" in q["sql"]
    ]


def test_snapshots_catch_up_and_are_idempotent(org_a, owner_a, in_tenant, history):
    now = timezone.now()
    history.deal(owner=owner_a, created=now - timedelta(days=5), won=now - timedelta(days=3))
    with in_tenant(org_a):
        first = services.snapshot_take(now=now - timedelta(days=2))
        assert first.days[-1] == (now - timedelta(days=3)).date()
        rows = DailyMetric.objects.count()
        again = services.snapshot_take(now=now - timedelta(days=2))
        assert again.days == []
        assert DailyMetric.objects.count() == rows
        later = services.snapshot_take(now=now)
        assert later.days == [(now - timedelta(days=2)).date(), (now - timedelta(days=1)).date()]
        days = list(SnapshotDay.objects.order_by("day").values_list("day", flat=True))
        assert days == [days[0] + timedelta(days=i) for i in range(len(days))]  # contiguous
        assert DailyMetric.objects.filter(metric="deals.won").count() == 1
        ends = list(SnapshotDay.objects.order_by("day").values_list("start", "end"))
        assert all(previous[1] == current[0] for previous, current in zip(ends, ends[1:], strict=False))


def test_beat_fans_the_snapshot_out_to_every_organization(org_a, org_b, in_tenant):
    assert settings.CELERY_BEAT_SCHEDULE["analytics-snapshots"]["task"] == "analytics.snapshot_all"
    assert tasks.snapshot_all_task.periodic
    assert tasks.snapshot_all_task.apply().get() >= 2  # eager in tests: each organization's task runs
    for organization in (org_a, org_b):
        with in_tenant(organization):
            assert SnapshotDay.objects.exists()


def test_one_renewal_after_commit_per_transaction(org_a, in_tenant, django_capture_on_commit_callbacks):
    from django.db import transaction

    from analytics import cache

    with in_tenant(org_a):
        before = cache.version()
        with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
            crm.lead_create(actor=SYSTEM, name="One")
            during = cache.version()
            crm.lead_create(actor=SYSTEM, name="Two")
        assert before != during != cache.version()  # renewed at once, and again at commit
    assert len([hook for hook in callbacks if isinstance(hook, cache._RenewAfterCommit)]) == 1
