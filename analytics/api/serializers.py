"""Input (query parameters) and output of the analytics API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics.anomalies import SERIES
from analytics.choices import ActionKind, Direction, Interval, Outcome, Priority
from analytics.measures import DIMENSIONS, MEASURES
from analytics.periods import DEFAULT_PRESET, MAX_DATE, MAX_PERIOD_DAYS, MIN_DATE, PRESETS
from config.api.errors import ValidationFailed
from config.api.fields import MonthField
from config.api.references import PersonReference
from crm.choices import ActivityKind, LeadSource, LeadStatus

MAX_ID = 2**63 - 1
TIME_DIMENSIONS = [interval.value for interval in Interval]


class MoneyField(serializers.DecimalField):
    """An amount: 20 digits, 2 after the point."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=20, decimal_places=2, **kwargs)


SOURCE_CHOICES = [*LeadSource.values, "none"]
MEASURE_KINDS = ["flow", "state", "cohort", "live"]
PROBABILITY_SOURCES = ["calibrated", "configured"]


def _id(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, help_text=help_text)


# --- input ---


class PeriodQuery(serializers.Serializer):
    period = serializers.ChoiceField(
        choices=PRESETS,
        required=False,
        help_text=f"A period relative to the organization's today, in its time zone (default `{DEFAULT_PRESET}`). "
        "`this_*`/`last_*` are calendar weeks (Monday to Sunday), months, quarters and years; the previous period "
        "of those is the unit before, of the others as many days before.",
    )
    start = serializers.DateField(required=False, help_text="First day (YYYY-MM-DD), with `end`, instead of `period`.")
    end = serializers.DateField(required=False, help_text="Last day (included), with `start`.")

    def validate(self, attrs):
        custom = "start" in attrs or "end" in attrs
        if custom and "period" in attrs:
            raise ValidationFailed(
                "Give `period` or `start` and `end`, not both.", field="period", code="period_conflict"
            )
        if custom:
            for name in ("start", "end"):
                if name not in attrs:
                    raise ValidationFailed(f"`{name}` is required with the other.", field=name, code="required")
                if not MIN_DATE <= attrs[name] <= MAX_DATE:
                    raise ValidationFailed(
                        f"Dates go from {MIN_DATE} to {MAX_DATE}.", field=name, code="date_out_of_range"
                    )
            if attrs["start"] > attrs["end"]:
                raise ValidationFailed("`start` is after `end`.", field="end", code="invalid_period")
            if (attrs["end"] - attrs["start"]).days + 1 > MAX_PERIOD_DAYS:
                raise ValidationFailed(
                    f"A period is at most {MAX_PERIOD_DAYS} days.", field="end", code="period_too_long"
                )
        return attrs


class OwnerQuery(PeriodQuery):
    owner = _id("Only the records of this owner (a user id); within your scope.")


class PipelineReportQuery(OwnerQuery):
    pipeline = _id("Only the deals of this pipeline (the funnel is of this pipeline, else of the default one).")


class ActivityReportQuery(OwnerQuery):
    pipeline = _id("Only the deals of this pipeline, for deals without a next step.")


def _measure(name: str):
    measure = MEASURES.get(name)
    if measure is None:
        raise ValidationFailed(
            f"Unknown measure {name!r}.", field="measure", code="unknown_measure", extra={"allowed": list(MEASURES)}
        )
    return measure


class FilterQuery(PeriodQuery):
    """The filters of the aggregate endpoint: each applies to the measures that have the dimension."""

    pipeline = _id("Pipeline id.")
    owner = _id("Owner (user id).")
    stage = _id("Stage id.")
    source = serializers.ChoiceField(choices=SOURCE_CHOICES, required=False, help_text="Lead source (`none`: blank).")  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    kind = serializers.ChoiceField(choices=ActivityKind.choices, required=False, help_text="Activity kind.")
    status = serializers.ChoiceField(choices=LeadStatus.choices, required=False, help_text="Lead status.")
    outcome = serializers.ChoiceField(choices=Outcome.choices, required=False, help_text="Won or lost.")

    def check_filters(self, measure) -> tuple[tuple[str, object], ...]:
        filters = []
        for dimension in DIMENSIONS:
            if dimension in self.validated_data:
                if dimension not in measure.dimensions:
                    raise ValidationFailed(
                        f"{measure.name} cannot be filtered by {dimension}; it can by: "
                        f"{', '.join(measure.dimensions)}.",
                        field=dimension,
                        code="unknown_dimension",
                        extra={"allowed": list(measure.dimensions)},
                    )
                filters.append((dimension, self.validated_data[dimension]))
        return tuple(filters)


class AggregateQuery(FilterQuery):
    measure = serializers.CharField(
        max_length=64, help_text="What to compute; `GET /api/v1/analytics/measures/` lists them: " + ", ".join(MEASURES)
    )
    group_by = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Comma-separated dimensions (at most 3): "
        + ", ".join(DIMENSIONS)
        + ", and one of day, week, month (the organization's local days, Monday weeks, months).",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        measure = _measure(attrs["measure"])
        dimensions = [item.strip() for item in (attrs.get("group_by") or "").split(",") if item.strip()]
        allowed = [*measure.dimensions, *(TIME_DIMENSIONS if measure.time else [])]
        unknown = [item for item in dimensions if item not in allowed]
        if unknown:
            raise ValidationFailed(
                f"{measure.name} cannot be grouped by {', '.join(unknown)}; it can by: {', '.join(allowed)}.",
                field="group_by",
                code="unknown_dimension",
                extra={"allowed": allowed},
            )
        times = [item for item in dimensions if item in TIME_DIMENSIONS]
        if len(times) > 1 or len(dimensions) != len(set(dimensions)) or len(dimensions) > 3:
            raise ValidationFailed(
                "Group by at most 3 different dimensions, one of them a time interval.",
                field="group_by",
                code="invalid_group_by",
                extra={"allowed": allowed},
            )
        attrs["interval"] = times[0] if times else None
        attrs["dimensions"] = tuple(item for item in dimensions if item not in TIME_DIMENSIONS)
        return attrs


class TimeSeriesQuery(FilterQuery):
    measure = serializers.CharField(max_length=64, help_text="A measure with history (`intervals` not empty).")
    interval = serializers.ChoiceField(choices=Interval.choices, default=Interval.DAY)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        measure = _measure(attrs["measure"])
        if not measure.time:
            raise ValidationFailed(
                f"{measure.name} is a state of now and has no history.",
                field="measure",
                code="no_history",
                extra={"allowed": [name for name, item in MEASURES.items() if item.time]},
            )
        return attrs


class ForecastQuery(serializers.Serializer):
    months = serializers.IntegerField(min_value=1, max_value=12, default=3, help_text="Months, the current one first.")
    pipeline = _id("Only the deals of this pipeline.")
    owner = _id("Only the deals of this owner.")


class AccuracyQuery(serializers.Serializer):
    months = serializers.IntegerField(min_value=1, max_value=24, default=6, help_text="Complete months looked back.")


class AnomalyQuery(serializers.Serializer):
    metric = serializers.ChoiceField(choices=list(SERIES), required=False)
    since = serializers.DateField(required=False, help_text="Anomalies of this day or later.")
    owner = _id("Only this owner's anomalies.")

    def validate_since(self, value: date) -> date:
        if not MIN_DATE <= value <= MAX_DATE:
            raise ValidationFailed(f"Dates go from {MIN_DATE} to {MAX_DATE}.", field="since", code="date_out_of_range")
        return value


# --- output ---

_VALUE_SCHEMA = {
    "oneOf": [{"type": "integer"}, {"type": "number"}, {"type": "string", "format": "decimal"}],
    "nullable": True,
    "description": "A count (integer), a ratio, days or hours (number), or an amount (decimal string); null when "
    "it cannot be told (nothing to divide by, no snapshot that day).",
}


@extend_schema_field(_VALUE_SCHEMA)
class MeasureValueField(serializers.Field):
    def to_representation(self, value):
        if isinstance(value, Decimal):
            return format(value, "f")
        return value


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"nullable": True, "oneOf": [{"type": "integer"}, {"type": "string"}]},
        "description": "The group's value of each dimension: ids for owner, pipeline and stage (null: none), "
        "keys for source, kind, status and outcome (`none`: blank), the first day (YYYY-MM-DD) for day, week, month.",
    }
)
class GroupField(serializers.Field):
    def to_representation(self, value):
        return {name: item.isoformat() if isinstance(item, date) else item for name, item in value.items()}


class AggregateRowOutput(serializers.Serializer):
    group = GroupField()
    labels = serializers.DictField(child=serializers.CharField(), help_text="Names of the owner, pipeline, stage.")
    value = MeasureValueField()


class TimeSeriesPointOutput(serializers.Serializer):
    start = serializers.DateField(help_text="First local day of the bucket.")
    end = serializers.DateField(help_text="Last local day of the bucket.")
    value = MeasureValueField()


class MeasureOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    unit = serializers.ChoiceField(choices=["count", "money", "ratio", "days", "hours", "money_per_day"])
    record = serializers.ChoiceField(choices=["deals", "leads", "activities"])
    kind = serializers.ChoiceField(
        choices=MEASURE_KINDS,
        help_text="flow: what happened in the period; state: at its end; cohort: of the leads created in it; "
        "live: now.",
    )
    dimensions = serializers.ListField(child=serializers.CharField())
    intervals = serializers.ListField(child=serializers.CharField())


class PeriodOutput(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    previous_start = serializers.DateField()
    previous_end = serializers.DateField()
    time_zone = serializers.CharField()


class CountFigure(serializers.Serializer):
    value = serializers.IntegerField(allow_null=True)
    previous = serializers.IntegerField(allow_null=True)
    change = serializers.FloatField(allow_null=True, help_text="(value − previous) ÷ previous.")


class MoneyFigure(serializers.Serializer):
    value = MoneyField(allow_null=True)
    previous = MoneyField(allow_null=True)
    change = serializers.FloatField(allow_null=True)


class NumberFigure(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    previous = serializers.FloatField(allow_null=True)
    change = serializers.FloatField(allow_null=True)


class StageRef(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    position = serializers.IntegerField()


class FunnelStepOutput(serializers.Serializer):
    stage = StageRef()
    reached = serializers.IntegerField(help_text="Deals closed in the period that reached this stage.")
    advanced = serializers.IntegerField(help_text="Of them, those that reached the next stage (won, after the last).")
    conversion_rate = serializers.FloatField(allow_null=True)
    drop_off = serializers.IntegerField()
    median_days_in_stage = serializers.FloatField(allow_null=True)


class FunnelOutput(serializers.Serializer):
    pipeline = serializers.IntegerField()
    won = serializers.IntegerField()
    stages = FunnelStepOutput(many=True)


class PipelineReportOutput(serializers.Serializer):
    period = PeriodOutput()
    pipeline = serializers.IntegerField(allow_null=True)
    owner = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    open_deals = CountFigure(help_text="At the end of the period (now, for a period that ends today or later).")
    open_value = MoneyFigure()
    weighted_value = MoneyFigure()
    deals_won = CountFigure()
    deals_lost = CountFigure()
    won_value = MoneyFigure()
    lost_value = MoneyFigure()
    win_rate = NumberFigure()
    win_rate_by_value = NumberFigure()
    average_deal_size = MoneyFigure()
    sales_cycle_days = NumberFigure()
    pipeline_velocity = MoneyFigure(help_text="Amount per day.")
    funnel = FunnelOutput(allow_null=True)


class SourceCountOutput(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    count = serializers.IntegerField()
    previous = serializers.IntegerField()


class StatusCountOutput(serializers.Serializer):
    status = serializers.CharField()
    count = serializers.IntegerField()


class AttributionOutput(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    deals_won = serializers.IntegerField()
    won_value = MoneyField()
    previous_won_value = MoneyField()


class LeadsReportOutput(serializers.Serializer):
    period = PeriodOutput()
    owner = serializers.IntegerField(allow_null=True)
    created = CountFigure()
    by_source = SourceCountOutput(many=True)
    by_status = StatusCountOutput(many=True, help_text="The leads created in the period, by their status now.")
    qualification_rate = NumberFigure()
    conversion_rate = NumberFigure()
    median_hours_to_first_activity = NumberFigure()
    average_hours_to_first_activity = NumberFigure()
    untouched = CountFigure()
    attribution = AttributionOutput(many=True, help_text="Won deals by the source of the lead they came from.")


class KindCountOutput(serializers.Serializer):
    kind = serializers.CharField()
    count = serializers.IntegerField()
    previous = serializers.IntegerField()


class OwnerActivityOutput(serializers.Serializer):
    owner = PersonReference(allow_null=True)
    total = serializers.IntegerField()
    by_kind = serializers.DictField(child=serializers.IntegerField())


class OwnerTallyOutput(serializers.Serializer):
    owner = PersonReference(allow_null=True)
    count = serializers.IntegerField()


class OverdueOutput(serializers.Serializer):
    count = serializers.IntegerField()
    by_owner = OwnerTallyOutput(many=True)


class NoNextStepOutput(serializers.Serializer):
    count = serializers.IntegerField()
    open_deals = serializers.IntegerField(allow_null=True)
    by_owner = OwnerTallyOutput(many=True)


class ActivityReportOutput(serializers.Serializer):
    period = PeriodOutput()
    owner = serializers.IntegerField(allow_null=True)
    total = CountFigure()
    by_kind = KindCountOutput(many=True)
    by_owner = OwnerActivityOutput(many=True)
    overdue_tasks = OverdueOutput()
    deals_without_next_step = NoNextStepOutput()


# --- forecasting ---


class RevenueMonthOutput(serializers.Serializer):
    month = MonthField()
    open_deals = serializers.IntegerField()
    expected = MoneyField()
    committed = MoneyField(help_text="Already won this month.")
    pipeline = MoneyField(help_text="Expected from open deals closing this month.")
    run_rate = MoneyField(help_text="Expected from deals not in the pipeline yet.")
    low_80 = MoneyField()
    high_80 = MoneyField()
    low_95 = MoneyField()
    high_95 = MoneyField()


class ForecastApartOutput(serializers.Serializer):
    open_deals = serializers.IntegerField()
    open_value = MoneyField()
    expected = MoneyField()


class StageProbabilityStageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    pipeline = serializers.IntegerField()


class StageProbabilityOutput(serializers.Serializer):
    stage = StageProbabilityStageOutput()
    configured = serializers.FloatField()
    calibrated = serializers.FloatField(allow_null=True)
    closed_deals = serializers.IntegerField(help_text="Deals closed in the calibration window that reached the stage.")
    won = serializers.IntegerField()
    used = serializers.FloatField()
    basis = serializers.ChoiceField(choices=PROBABILITY_SOURCES, help_text="Which probability is used.")


class CalibrationOutput(serializers.Serializer):
    min_closed_deals = serializers.IntegerField()
    days = serializers.IntegerField()


class RevenueForecastOutput(serializers.Serializer):
    time_zone = serializers.CharField()
    pipeline = serializers.IntegerField(allow_null=True)
    owner = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    calibration = CalibrationOutput()
    run_rate_months = serializers.IntegerField()
    months = RevenueMonthOutput(many=True)
    unscheduled = ForecastApartOutput(help_text="Open deals without an expected close date.")
    later = ForecastApartOutput(help_text="Open deals expected to close after the last month.")
    probabilities = StageProbabilityOutput(many=True)


class AccuracyMonthOutput(serializers.Serializer):
    month = MonthField()
    forecast = MoneyField()
    low_80 = MoneyField()
    high_80 = MoneyField()
    actual = MoneyField()
    error = MoneyField(help_text="actual − forecast.")
    absolute_percentage_error = serializers.FloatField(allow_null=True)
    within_80 = serializers.BooleanField()
    forecast_week = serializers.DateField()


class AccuracyOutput(serializers.Serializer):
    owner = PersonReference(allow_null=True, help_text="null: the whole organization.")
    months = AccuracyMonthOutput(many=True)
    mean_absolute_percentage_error = serializers.FloatField(allow_null=True)
    bias = MoneyField(help_text="Mean of actual − forecast.")
    hit_rate_80 = serializers.FloatField()


class ForecastSnapshotOutput(serializers.Serializer):
    week = serializers.DateField()
    month = MonthField()
    owner = serializers.IntegerField(source="owner_id", allow_null=True)
    expected = MoneyField()
    low_80 = MoneyField()
    high_80 = MoneyField()
    low_95 = MoneyField()
    high_95 = MoneyField()
    taken_at = serializers.DateTimeField()


class AnomalyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    day = serializers.DateField()
    metric = serializers.ChoiceField(choices=list(SERIES))
    owner = serializers.IntegerField(source="owner_id", allow_null=True, help_text="null: the whole organization.")
    value = MoneyField()
    expected = MoneyField()
    lower = MoneyField()
    upper = MoneyField()
    direction = serializers.ChoiceField(choices=Direction.choices)
    score = serializers.FloatField()
    detected_at = serializers.DateTimeField()


class ActionOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ActionKind.choices)
    reason = serializers.CharField()
    priority = serializers.ChoiceField(choices=Priority.choices)
    weight = serializers.IntegerField()
    suggested_action = serializers.CharField()


class ActionStageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ActionDealOutput(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    stage = ActionStageOutput()
    owner = serializers.IntegerField(allow_null=True)
    expected_close_date = serializers.DateField(allow_null=True)


class NextActionOutput(serializers.Serializer):
    deal = ActionDealOutput()
    action = serializers.ChoiceField(choices=ActionKind.choices, help_text="The next-best-action: the top reason.")
    priority = serializers.ChoiceField(choices=Priority.choices)
    reason = serializers.CharField()
    suggested_action = serializers.CharField()
    score = serializers.IntegerField(help_text="Sum of the reasons' weights; the list is ranked by the top one.")
    reasons = ActionOutput(many=True)
