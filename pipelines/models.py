from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from crm.models import Company, Contact, Record, owner_field

from .choices import DealStatus, StageKind


class Pipeline(models.Model):
    name = models.CharField(max_length=100)
    currency = models.CharField(max_length=3, default="USD")
    is_default = models.BooleanField(default=False)
    is_archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_default", "name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_pipeline"),
        ]

    def __str__(self) -> str:
        return self.name


class Stage(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField()
    probability = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    kind = models.CharField(max_length=8, choices=StageKind.choices, default=StageKind.OPEN)
    rotting_days = models.PositiveIntegerField(null=True, blank=True, help_text="Days before a deal here rots.")

    class Meta:
        ordering = ["pipeline_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "position"], name="stage_position_unique", deferrable=models.Deferrable.DEFERRED
            ),
            models.CheckConstraint(condition=Q(probability__lte=100), name="stage_probability_range"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} · {self.name}"


class Deal(Record):
    title = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="USD")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="deals")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="deals")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="deals")
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="deals")
    expected_close_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=DealStatus.choices, default=DealStatus.OPEN)
    lost_reason = models.CharField(max_length=500, blank=True)
    won_at = models.DateTimeField(null=True, blank=True)
    lost_at = models.DateTimeField(null=True, blank=True)
    stage_entered_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The board ranks deals per stage newest first and sums them per stage: an index-only scan of this
            # index gives both, for everyone and for one owner, without sorting or reading the table.
            models.Index(
                fields=["pipeline", "stage", "-created_at", "-id"],
                include=["amount", "owner"],
                name="deal_board_rank_idx",
            ),
            models.Index(fields=["status", "expected_close_date"], name="deal_forecast_idx"),
            models.Index(fields=["owner", "status"], name="deal_owner_status_idx"),
        ]

    def __str__(self) -> str:
        return self.title


class StageChange(models.Model):
    """One move of a deal between stages, with how long it stayed in the previous one."""

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_stage = models.ForeignKey(Stage, null=True, on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField(auto_now_add=True)
    changed_by = owner_field()
    time_in_previous_stage = models.DurationField(null=True, blank=True)
    # The names at the time of the move: the history stays readable after a stage is renamed or deleted.
    from_stage_name = models.CharField(max_length=100, blank=True)
    to_stage_name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["deal_id", "changed_at", "pk"]
        indexes = [models.Index(fields=["deal", "-changed_at"], name="stage_change_deal_idx")]

    def __str__(self) -> str:
        return f"{self.deal_id}: {self.from_stage_id} → {self.to_stage_id}"
