"""Analytics storage, in the organization's schema: daily metric snapshots, the days they cover, detected
anomalies and weekly forecast snapshots.

Rows name owners, pipelines and stages by id without database constraints: a snapshot outlives the stage that was
deleted or renamed since, and owners are users of the control plane. Every table with an ``owner`` is an
``OwnedQuerySet``, so the one record-scope rule (``visible_to``) limits what a caller reads from it, as it limits
the records themselves.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from rbac.actor import OwnedQuerySet

from .choices import Direction, Metric

OwnedManager = models.Manager.from_queryset(OwnedQuerySet)


def _owner():
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )


class DailyMetric(models.Model):
    """One group of one day's figures: what happened that day (flows), or what was open at its end (``deals.open``),
    per owner, pipeline, stage and key (a lead source, an activity kind, an outcome). Written once per local day
    by the snapshot task; reports over history sum these rows instead of reading the records."""

    day = models.DateField(help_text="The organization's local day.")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    owner = _owner()
    pipeline_id = models.BigIntegerField(null=True, blank=True)
    stage_id = models.BigIntegerField(null=True, blank=True)
    key = models.CharField(max_length=32, blank=True, default="")
    count = models.BigIntegerField(default=0)
    amount = models.DecimalField(max_digits=20, decimal_places=2, default=0)
    seconds = models.BigIntegerField(default=0, help_text="Sum of the durations (sales cycle, time in stage).")
    # Every duration of the group (stage exits), in seconds: medians over any period stay exact.
    durations = ArrayField(models.IntegerField(), null=True, blank=True)

    objects = OwnedManager()

    class Meta:
        indexes = [
            models.Index(fields=["metric", "day"], name="daily_metric_day_idx"),
            models.Index(fields=["metric", "owner", "day"], name="daily_metric_owner_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric}"


class SnapshotDay(models.Model):
    """A local day the snapshot covers, ``[start, end)``. Reports read snapshots up to the last day's end and the
    records themselves after it (the live tail)."""

    day = models.DateField(unique=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    time_zone = models.CharField(max_length=64)
    # Whether ``deals.open`` was recorded at the end of this day (the open pipeline cannot be rebuilt afterwards).
    has_open_state = models.BooleanField(default=False)
    # Highest activity id created well before ``end``: the live tail reads activities above it by primary key.
    activity_floor = models.BigIntegerField(default=0)
    taken_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return str(self.day)


class Anomaly(models.Model):
    """A day whose metric fell outside its expected range, for the whole organization (no owner) or one owner."""

    day = models.DateField()
    metric = models.CharField(max_length=32)
    owner = _owner()
    value = models.DecimalField(max_digits=20, decimal_places=2)
    expected = models.DecimalField(max_digits=20, decimal_places=2)
    lower = models.DecimalField(max_digits=20, decimal_places=2)
    upper = models.DecimalField(max_digits=20, decimal_places=2)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    score = models.FloatField(help_text="Distance from the expected value in robust standard deviations.")
    detected_at = models.DateTimeField(auto_now_add=True)

    objects = OwnedManager()

    class Meta:
        ordering = ["-day", "metric", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "metric", "owner"], nulls_distinct=False, name="anomaly_day_metric_owner_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} {self.direction}"


class ForecastSnapshot(models.Model):
    """The revenue forecast of one month as made in one week, for one owner or the whole organization (no owner):
    kept to measure forecast accuracy once the month is over."""

    week = models.DateField(help_text="Monday of the local week the forecast was made in.")
    month = models.DateField(help_text="First day of the forecast month.")
    owner = _owner()
    expected = models.DecimalField(max_digits=20, decimal_places=2)
    low_80 = models.DecimalField(max_digits=20, decimal_places=2)
    high_80 = models.DecimalField(max_digits=20, decimal_places=2)
    low_95 = models.DecimalField(max_digits=20, decimal_places=2)
    high_95 = models.DecimalField(max_digits=20, decimal_places=2)
    taken_at = models.DateTimeField(auto_now_add=True)

    objects = OwnedManager()

    class Meta:
        ordering = ["-week", "month", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["week", "month", "owner"], nulls_distinct=False, name="forecast_snapshot_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.week}: {self.month}"
