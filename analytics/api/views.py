"""Analytics under ``/api/v1/analytics/``.

Reports, time series, the aggregate and the measure catalogue need ``analytics.report.view``; forecasting,
anomalies and next-best-actions need it too and the plan feature ``analytics.forecast``. Every figure is computed
over the records the caller's role lets him see (each record type's view permission and scope), so the report
permission opens the reports, never more records.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from analytics import anomalies, forecasts, selectors
from analytics.actions import NextActions
from analytics.measures import MEASURES
from analytics.periods import DEFAULT_PRESET, Period, bucket_end, local_date, preset, time_zone_of
from analytics.permissions import REPORT_VIEW
from billing.features import Feature
from config.api.errors import NotFound, ValidationFailed
from config.api.viewsets import OrganizationViewSet
from tenants.selectors import current_organization

from .serializers import (
    MAX_ID,
    AccuracyOutput,
    AccuracyQuery,
    ActionOutput,
    ActivityReportOutput,
    ActivityReportQuery,
    AggregateQuery,
    AggregateRowOutput,
    AnomalyOutput,
    AnomalyQuery,
    ForecastQuery,
    ForecastSnapshotOutput,
    LeadsReportOutput,
    MeasureOutput,
    NextActionOutput,
    OwnerQuery,
    PipelineReportOutput,
    PipelineReportQuery,
    RevenueForecastOutput,
    TimeSeriesPointOutput,
    TimeSeriesQuery,
)

TAGS = ["analytics"]


def _query(serializer_class, request):
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query


class _Analytics(OrganizationViewSet):
    queryset = None

    def _tz(self):
        return time_zone_of(current_organization())

    def _period(self, data, now) -> Period:
        tz = self._tz()
        if "start" in data:
            return Period(data["start"], data["end"], tz)
        return preset(data.get("period", DEFAULT_PRESET), today=local_date(now, tz), tz=tz)


class ReportViewSet(_Analytics):
    action_permissions = {
        "pipeline": REPORT_VIEW,
        "leads": REPORT_VIEW,
        "activity": REPORT_VIEW,
        "aggregate": REPORT_VIEW,
        "timeseries": REPORT_VIEW,
        "measures": REPORT_VIEW,
    }

    @extend_schema(
        parameters=[PipelineReportQuery],
        responses={200: PipelineReportOutput},
        tags=TAGS,
        description="Open and weighted value, win rate (by count and value), average deal size, sales cycle, "
        "velocity, each with the previous period beside it, and the stage-to-stage funnel of the deals closed in "
        "the period with drop-off and median days in stage.",
    )
    @action(detail=False, methods=["get"])
    def pipeline(self, request):
        query = _query(PipelineReportQuery, request)
        now = timezone.now()
        data = query.validated_data
        report = selectors.pipeline_report(
            actor=self.access,
            period=self._period(data, now),
            pipeline_id=data.get("pipeline"),
            owner_id=data.get("owner"),
            now=now,
        )
        return Response(PipelineReportOutput(report).data)

    @extend_schema(
        parameters=[OwnerQuery],
        responses={200: LeadsReportOutput},
        tags=TAGS,
        description="Leads created by source, the statuses they reached, qualification and conversion rates, time "
        "to first activity, and the won value attributed to each lead source.",
    )
    @action(detail=False, methods=["get"])
    def leads(self, request):
        query = _query(OwnerQuery, request)
        now = timezone.now()
        data = query.validated_data
        report = selectors.leads_report(
            actor=self.access, period=self._period(data, now), owner_id=data.get("owner"), now=now
        )
        return Response(LeadsReportOutput(report).data)

    @extend_schema(
        parameters=[ActivityReportQuery],
        responses={200: ActivityReportOutput},
        tags=TAGS,
        description="Activities per owner and kind, overdue tasks, and open deals without a next step.",
    )
    @action(detail=False, methods=["get"])
    def activity(self, request):
        query = _query(ActivityReportQuery, request)
        now = timezone.now()
        data = query.validated_data
        report = selectors.activity_report(
            actor=self.access,
            period=self._period(data, now),
            owner_id=data.get("owner"),
            pipeline_id=data.get("pipeline"),
            now=now,
        )
        return Response(ActivityReportOutput(report).data)

    def _aggregate(self, query, *, dimensions, interval, now):
        data = query.validated_data
        measure = MEASURES[data["measure"]]
        aggregate = selectors.AggregateQuery(
            measure=measure.name,
            period=self._period(data, now),
            group_by=dimensions,
            interval=interval,
            filters=query.check_filters(measure),
        )
        try:
            return aggregate, selectors.aggregate(actor=self.access, query=aggregate, tz=self._tz(), now=now)
        except selectors.TooManyGroups:
            raise ValidationFailed(
                f"More than {selectors.MAX_GROUPS} groups: shorten the period or group by less.",
                field="group_by",
                code="too_many_groups",
            ) from None

    @extend_schema(
        parameters=[AggregateQuery],
        responses={200: AggregateRowOutput(many=True)},
        tags=TAGS,
        description="One measure over the period, grouped by up to three dimensions (one of them day, week or month, "
        "in the organization's time zone) and filtered by any of its dimensions: the query every report is made "
        "of. `GET /api/v1/analytics/measures/` lists the measures with their unit and dimensions. An unknown "
        "measure or dimension is 400 with `allowed`.",
    )
    @action(detail=False, methods=["get"])
    def aggregate(self, request):
        query = _query(AggregateQuery, request)
        data = query.validated_data
        _aggregate, rows = self._aggregate(
            query, dimensions=data["dimensions"], interval=data["interval"], now=timezone.now()
        )
        return self.page_of(rows, AggregateRowOutput)

    @extend_schema(
        parameters=[TimeSeriesQuery],
        responses={200: TimeSeriesPointOutput(many=True)},
        tags=TAGS,
        description="A measure per day, week (Monday to Sunday) or month in the organization's time zone, every "
        "bucket of the period listed, empty ones at 0 (null where a value cannot be told).",
    )
    @action(detail=False, methods=["get"])
    def timeseries(self, request):
        query = _query(TimeSeriesQuery, request)
        interval = query.validated_data["interval"]
        aggregate, rows = self._aggregate(query, dimensions=(), interval=interval, now=timezone.now())
        period = aggregate.period
        points = []
        for row in rows:
            start = row["group"][interval]
            end = min(bucket_end(start, interval), period.end)
            points.append({"start": max(start, period.start), "end": end, "value": row["value"]})
        return self.page_of(points, TimeSeriesPointOutput)

    @extend_schema(responses={200: MeasureOutput(many=True)}, tags=TAGS, description="The measures of the aggregate.")
    @action(detail=False, methods=["get"])
    def measures(self, request):
        return self.page_of(selectors.measure_catalogue(), MeasureOutput)


DEAL_ID = OpenApiParameter("deal_id", int, OpenApiParameter.PATH, description="A deal's id.")


class InsightViewSet(_Analytics):
    required_feature = Feature.FORECAST
    action_permissions = {
        "forecast": REPORT_VIEW,
        "forecast_accuracy": REPORT_VIEW,
        "forecast_snapshots": REPORT_VIEW,
        "anomalies": REPORT_VIEW,
        "next_actions": REPORT_VIEW,
        "deal_next_actions": REPORT_VIEW,
    }

    @extend_schema(
        parameters=[ForecastQuery],
        responses={200: RevenueForecastOutput},
        tags=TAGS,
        description="Expected revenue per month with 80% and 95% intervals: won so far, the open pipeline weighted "
        "by stage probabilities (calibrated from the organization's closed deals when at least "
        f"{forecasts.CALIBRATION_MIN_DEALS} reached the stage in the last {forecasts.CALIBRATION_DAYS} days, else "
        "configured) and the run-rate of business not in the pipeline yet.",
    )
    @action(detail=False, methods=["get"])
    def forecast(self, request):
        data = _query(ForecastQuery, request).validated_data
        result = forecasts.forecast(
            actor=self.access,
            tz=self._tz(),
            months=data["months"],
            pipeline_id=data.get("pipeline"),
            owner_id=data.get("owner"),
        )
        return Response(RevenueForecastOutput(result).data)

    @extend_schema(
        parameters=[AccuracyQuery],
        responses={200: AccuracyOutput(many=True)},
        tags=TAGS,
        description="Forecast against actual, per owner, for each complete month with a forecast made at its "
        "start (weekly snapshots).",
    )
    @action(detail=False, methods=["get"], url_path="forecast/accuracy")
    def forecast_accuracy(self, request):
        data = _query(AccuracyQuery, request).validated_data
        rows = forecasts.forecast_accuracy(actor=self.access, tz=self._tz(), months=data["months"])
        return self.page_of(rows, AccuracyOutput)

    @extend_schema(responses={200: ForecastSnapshotOutput(many=True)}, tags=TAGS, description="Weekly forecasts kept.")
    @action(detail=False, methods=["get"], url_path="forecast/snapshots")
    def forecast_snapshots(self, request):
        return self.page_of(forecasts.forecast_snapshots(actor=self.access), ForecastSnapshotOutput)

    @extend_schema(
        parameters=[AnomalyQuery],
        responses={200: AnomalyOutput(many=True)},
        tags=TAGS,
        description="Days whose metric fell outside its expected range (robust to the weekly pattern), for the "
        "organization (owner null) and per owner; each was also sent as an `analytics.anomaly_detected` event.",
    )
    @action(detail=False, methods=["get"])
    def anomalies(self, request):
        data = _query(AnomalyQuery, request).validated_data
        rows = anomalies.anomaly_list(
            actor=self.access, metric=data.get("metric"), since=data.get("since"), owner_id=data.get("owner")
        )
        return self.page_of(rows, AnomalyOutput)

    @extend_schema(
        responses={200: NextActionOutput(many=True)},
        tags=TAGS,
        description="My next actions: my open deals that need attention, most urgent first, each with its reasons "
        "(stale or rotting, no next activity, close date passed, high value at risk, no contact person), priority "
        "and suggested action.",
    )
    @action(detail=False, methods=["get"], url_path="next-actions")
    def next_actions(self, request):
        actions = NextActions(self.access, tz=self._tz())
        return self.page_of(actions.mine(), NextActionOutput, load=actions.load)

    @extend_schema(
        parameters=[DEAL_ID],
        responses={200: ActionOutput(many=True)},
        tags=TAGS,
        description="The next-best-actions of one deal, most urgent first (none for a closed deal).",
    )
    @action(detail=False, methods=["get"], url_path=r"deals/(?P<deal_id>\d+)/next-actions")
    def deal_next_actions(self, request, deal_id=None):
        reasons = NextActions(self.access, tz=self._tz()).of_deal(int(deal_id)) if int(deal_id) <= MAX_ID else None
        if reasons is None:
            raise NotFound()
        return self.page_of(reasons, ActionOutput)
