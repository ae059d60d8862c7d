"""Benchmark of the deals board and the forecast, through the whole request stack.

    .venv/bin/python bench/board.py [--deals 10000] [--runs 50] [--per-stage 20] [--keep]

It creates its own database (``crm_bench_board``, dropped first if it exists, and at the end unless ``--keep``),
migrates the shared schema, provisions one organization on the Enterprise plan with an owner and four Sales Reps
(``bench/common.py``), bulk-creates the deals, and then times requests made with Django's test ``Client``: tenant
resolution, JWT authentication, the authorization policy, the view and JSON rendering all run, as in
production (``DJANGO_DEBUG=0``). Only the network is missing. Each endpoint gets a warm-up, then ``--runs``
timed requests; the SQL query count of one more request is printed.

Baselines, measured in the same run through the same stack: the board written as a per-stage ORM loop,
once naively (model instances with lazily loaded relations, serialized by DRF: N+1 queries) and once with the
product's card query per stage (two queries per stage, same rendering as the product).

Target: the board's first page p50 < 15 ms at 10,000 open deals; the exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import types
from datetime import timedelta
from decimal import Decimal

import common

DB_NAME = "crm_bench_board"
# The target: the board's first page answers within 15 ms (median) at 10,000 open deals.
TARGET_P50_MS = 15
SLUG = "bench-board"


# --- data ---


def build_dataset(*, deals: int, closed: int):
    from django.db import connection
    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from crm.models import Company, Contact, Tag
    from pipelines import services as pipeline_services
    from pipelines.choices import DealStatus, StageKind
    from pipelines.models import Deal, Stage
    from rbac.actor import SystemActor

    common.migrate()
    organization, owner, reps = common.organization(SLUG, members=4)
    people = [owner, *reps]

    rng = random.Random(42)
    with tenant_context(organization):
        pipeline = pipeline_services.pipeline_create_default(actor=SystemActor("benchmark"))
        stages = list(Stage.objects.filter(pipeline=pipeline).order_by("position"))
        open_stages = [s for s in stages if s.kind == StageKind.OPEN]
        won = next(s for s in stages if s.kind == StageKind.WON)
        lost = next(s for s in stages if s.kind == StageKind.LOST)
        companies = Company.objects.bulk_create([Company(name=f"Company {i}") for i in range(500)])
        contacts = Contact.objects.bulk_create(
            [
                Contact(first_name=f"First{i}", last_name=f"Last{i}", company=companies[i % len(companies)])
                for i in range(1000)
            ]
        )
        tags = Tag.objects.bulk_create([Tag(name=f"tag-{i}") for i in range(10)])
        now = timezone.now()
        today = now.date()
        rows = []
        for i in range(deals + closed):
            is_open = i < deals
            stage = open_stages[i % len(open_stages)] if is_open else (won if i % 3 else lost)
            status = DealStatus.OPEN if is_open else (DealStatus.WON if stage == won else DealStatus.LOST)
            rows.append(
                Deal(
                    title=f"Deal {i}",
                    amount=Decimal(rng.randrange(10_000, 5_000_000)) / 100,
                    pipeline=pipeline,
                    stage=stage,
                    status=status,
                    owner_id=people[i % len(people)].pk,
                    contact=contacts[i % len(contacts)] if i % 4 else None,
                    company=companies[i % len(companies)] if i % 3 else None,
                    expected_close_date=today + timedelta(days=rng.randrange(-30, 365)) if i % 10 else None,
                    stage_entered_at=now - timedelta(days=rng.randrange(0, 40)),
                    won_at=now - timedelta(days=rng.randrange(0, 365)) if status == DealStatus.WON else None,
                    lost_at=now - timedelta(days=rng.randrange(0, 365)) if status == DealStatus.LOST else None,
                    lost_reason="Price" if status == DealStatus.LOST else "",
                )
            )
        created = Deal.objects.bulk_create(rows, batch_size=2000)
        through = Deal.tags.through
        through.objects.bulk_create(
            [
                through(deal_id=deal.pk, tag_id=tags[(deal.pk + k) % len(tags)].pk)
                for deal in created
                for k in range(deal.pk % 3)
            ],
            batch_size=5000,
        )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # the steady state autovacuum keeps: visibility map, statistics
    return organization, pipeline, owner, reps[0]


# --- baselines: the board as a per-stage ORM loop ---


def baseline_urlconf():
    """A URLconf with the product's URLs plus two baseline boards on a subclass of the real viewset."""
    from django.db.models import Count, Sum
    from django.urls import include, path
    from rest_framework.decorators import action
    from rest_framework.response import Response
    from rest_framework.routers import SimpleRouter

    from pipelines.api.serializers import DealCardOutput, DealStageOutput
    from pipelines.api.views import PipelineViewSet, board_body
    from pipelines.models import Deal
    from pipelines.permissions import DEAL_VIEW
    from pipelines.selectors import BoardColumn, card_rows

    class BaselineBoardViewSet(PipelineViewSet):
        action_permissions = {**PipelineViewSet.action_permissions, "naive_board": DEAL_VIEW, "loop_board": DEAL_VIEW}

        @action(detail=True, methods=["get"], url_path="naive-board")
        def naive_board(self, request, pk=None):
            """Per stage: count, sum, first page; the cards serialized from lazily loaded models (N+1)."""
            pipeline, per_stage = self.get_object(), int(request.query_params.get("per_stage", 20))
            stages = []
            for stage in pipeline.stages.all():
                deals = Deal.objects.visible_to(self.access, DEAL_VIEW).filter(pipeline=pipeline, stage=stage)
                amount = deals.aggregate(total=Sum("amount"))["total"] or Decimal("0")
                count = deals.count()
                page = list(deals.order_by("-created_at", "-pk")[:per_stage])
                stages.append(
                    {
                        "stage": DealStageOutput(stage).data,
                        "count": count,
                        "amount": f"{amount:.2f}",
                        "weighted_amount": f"{amount * stage.probability / 100:.2f}",
                        "deals": DealCardOutput(page, many=True).data,
                        "next": None,
                    }
                )
            return Response({"pipeline": pipeline.pk, "currency": pipeline.currency, "stages": stages})

        @action(detail=True, methods=["get"], url_path="loop-board")
        def loop_board(self, request, pk=None):
            """Per stage: one aggregate and one card query (the product's card rows): 2 queries per stage."""
            pipeline, per_stage = self.get_object(), int(request.query_params.get("per_stage", 20))
            columns = []
            for stage in pipeline.stages.all():
                deals = Deal.objects.visible_to(self.access, DEAL_VIEW).filter(pipeline=pipeline, stage=stage)
                totals = deals.aggregate(n=Count("pk"), total=Sum("amount"))
                amount = totals["total"] or Decimal("0")
                columns.append(
                    BoardColumn(
                        stage=stage,
                        count=totals["n"],
                        amount=amount,
                        weighted_amount=(amount * stage.probability / 100).quantize(Decimal("0.01")),
                        deals=list(card_rows(deals.order_by("-created_at", "-pk")[:per_stage])),
                    )
                )
            return Response(board_body(request, pipeline, columns, per_stage))

    router = SimpleRouter()
    router.register("baseline-pipelines", BaselineBoardViewSet, basename="baseline-pipeline")
    module = types.ModuleType("bench_board_urls")
    module.urlpatterns = [path("", include("config.urls")), path("api/v1/", include(router.urls))]
    sys.modules[module.__name__] = module
    return module.__name__


# --- measuring ---


def measure(client, url: str, headers: dict, *, runs: int, warmup: int = 5) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        response = client.get(url, **headers)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {response.content[:300]!r}")
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, **headers)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as captured:
        client.get(url, **headers)
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p90": timings[max(0, int(round(0.9 * len(timings))) - 1)],
        "queries": len(captured),
        "bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=10_000, help="open deals (default 10,000)")
    parser.add_argument("--closed", type=int, default=1_000, help="won and lost deals, for the forecast")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--per-stage", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args()

    common.recreate_database(DB_NAME)
    common.configure(DB_NAME)
    from django.conf import settings
    from django.db import connections
    from django.test import Client, override_settings
    from django.urls import clear_url_caches

    from identity.services import tokens_for

    try:
        started = time.perf_counter()
        organization, pipeline, owner, rep = build_dataset(deals=args.deals, closed=args.closed)
        print(
            f"dataset: {args.deals:,} open + {args.closed:,} closed deals, 6 stages (4 open), "
            f"built in {time.perf_counter() - started:.1f} s; database {DB_NAME}; DEBUG={settings.DEBUG}"
        )
        with override_settings(ROOT_URLCONF=baseline_urlconf()):
            clear_url_caches()
            client = Client()

            def headers_for(user):
                return {
                    "HTTP_AUTHORIZATION": f"Bearer {tokens_for(user=user)['access']}",
                    "HTTP_X_ORGANIZATION": organization.slug,
                }

            owner_headers, rep_headers = headers_for(owner), headers_for(rep)
            per_stage = f"per_stage={args.per_stage}"
            base = f"/api/v1/pipelines/{pipeline.pk}"
            cases = [
                ("pipeline detail (the stack's floor)", f"{base}/", owner_headers),
                ("board, first page", f"{base}/board/?{per_stage}", owner_headers),
                ("board, Sales Rep (own scope)", f"{base}/board/?{per_stage}", rep_headers),
                ("forecast", f"{base}/forecast/", owner_headers),
                ("stats", f"{base}/stats/", owner_headers),
                ("deals list, 25 per page", "/api/v1/deals/", owner_headers),
                (
                    "baseline: per-stage loop, lazy (N+1)",
                    f"/api/v1/baseline-pipelines/{pipeline.pk}/naive-board/?{per_stage}",
                    owner_headers,
                ),
                (
                    "baseline: per-stage loop, card query",
                    f"/api/v1/baseline-pipelines/{pipeline.pk}/loop-board/?{per_stage}",
                    owner_headers,
                ),
            ]
            results = {}
            print(
                f"\n{'request (' + str(args.runs) + ' runs after warm-up)':44} {'p50 ms':>8} {'p90 ms':>8} {'SQL':>5}"
            )
            for name, url, headers in cases:
                results[name] = measure(client, url, headers, runs=args.runs)
                r = results[name]
                print(f"{name:44} {r['p50']:8.2f} {r['p90']:8.2f} {r['queries']:5d}")
        clear_url_caches()

        board = results["board, first page"]
        print()
        for name in ("baseline: per-stage loop, lazy (N+1)", "baseline: per-stage loop, card query"):
            ratio = results[name]["p50"] / board["p50"]
            print(f"{name} / board p50: {ratio:.1f}x slower ({results[name]['queries']} vs {board['queries']} queries)")
        common.check(
            f"board first page p50 < {TARGET_P50_MS} ms at {args.deals:,} deals",
            board["p50"] < TARGET_P50_MS,
            f"{board['p50']:.2f} ms",
        )
    finally:
        connections.close_all()
        if not args.keep:
            common.drop_database(DB_NAME)
    common.finish()


if __name__ == "__main__":
    main()
