from decimal import Decimal

from django.utils import timezone
from rest_framework import serializers

from config.api.fields import MemberField, MonthField, ScopedRecordField
from config.api.outputs import ModelOutput
from config.api.references import PersonReference, RecordReference, person_name
from crm.api.serializers import TAG_NAMES_HELP, RecordOutput
from crm.models import Company, Contact
from crm.permissions import COMPANY_VIEW, CONTACT_VIEW
from pipelines.choices import DealStatus, StageKind
from pipelines.models import Deal, Pipeline, Stage

CENT = Decimal("0.01")

# --- stages and pipelines ---


class StageOutput(ModelOutput):
    pipeline = RecordReference()

    class Meta:
        model = Stage
        fields = ["id", "pipeline", "name", "position", "probability", "kind", "rotting_days"]


class PipelineOutput(ModelOutput):
    stages = StageOutput(many=True)

    class Meta:
        model = Pipeline
        fields = ["id", "name", "currency", "is_default", "is_archived", "stages", "created_at", "updated_at"]


class StageSpecInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    probability = serializers.IntegerField(min_value=0, max_value=100, default=0)
    kind = serializers.ChoiceField(choices=StageKind.choices, default=StageKind.OPEN)
    rotting_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True)


class PipelineInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, help_text="ISO 4217 code, e.g. EUR. Default: the organization's currency."
    )
    stages = StageSpecInput(
        many=True,
        required=False,
        help_text="In board order; one won and one lost stage, at least one open. Default: the standard stages.",
    )
    is_default = serializers.BooleanField(required=False)


class PipelineUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)


class StageReorderInput(serializers.Serializer):
    stages = serializers.ListField(
        child=serializers.IntegerField(), min_length=1, max_length=100, help_text="Every stage id, in the new order."
    )


class StageInput(serializers.Serializer):
    pipeline = serializers.PrimaryKeyRelatedField(queryset=Pipeline.objects.all())
    name = serializers.CharField(max_length=100)
    probability = serializers.IntegerField(min_value=0, max_value=100, default=0)
    kind = serializers.ChoiceField(
        choices=[StageKind.OPEN], default=StageKind.OPEN, help_text="New stages are open stages."
    )
    rotting_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True)
    position = serializers.IntegerField(min_value=0, required=False, help_text="Default: after the last stage.")


class StageUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    probability = serializers.IntegerField(min_value=0, max_value=100, required=False)
    rotting_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True)


class StageDeleteInput(serializers.Serializer):
    move_to = serializers.PrimaryKeyRelatedField(
        queryset=Stage.objects.all(),
        required=False,
        help_text="Where the stage's deals go: another open stage of the same pipeline. Required when it holds deals.",
    )


# --- deals ---


class DealStageOutput(ModelOutput):
    class Meta:
        model = Stage
        fields = ["id", "name", "kind", "probability", "position"]


class DealOutput(RecordOutput):
    pipeline = RecordReference()
    stage = DealStageOutput()
    contact = RecordReference(allow_null=True)
    company = RecordReference(allow_null=True)
    is_rotting = serializers.SerializerMethodField()

    class Meta:
        model = Deal
        fields = [
            "id",
            "title",
            "amount",
            "currency",
            "pipeline",
            "stage",
            "status",
            "contact",
            "company",
            "expected_close_date",
            "owner",
            "tags",
            "custom_fields",
            "lost_reason",
            "won_at",
            "lost_at",
            "stage_entered_at",
            "is_rotting",
            "created_at",
            "updated_at",
        ]

    def get_is_rotting(self, deal: Deal) -> bool:
        return is_rotting(deal)


class DealCardOutput(serializers.Serializer):
    """A deal on the board: what a card shows."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=DealStatus.choices)
    stage = RecordReference()
    owner = PersonReference(allow_null=True)
    contact = RecordReference(allow_null=True)
    company = RecordReference(allow_null=True)
    expected_close_date = serializers.DateField(allow_null=True)
    stage_entered_at = serializers.DateTimeField()
    is_rotting = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    updated_at = serializers.DateTimeField()

    def get_is_rotting(self, deal: Deal) -> bool:
        return is_rotting(deal)

    def get_tags(self, deal: Deal) -> list[str]:
        return sorted(tag.name for tag in deal.tags.all())


def is_rotting(deal: Deal, now=None) -> bool:
    return _rots(deal.status, deal.stage.rotting_days, deal.stage_entered_at, now or timezone.now())


def _rots(status: str, rotting_days: int | None, entered, now) -> bool:
    return status == DealStatus.OPEN and bool(rotting_days) and (now - entered).days >= rotting_days


def _instant(value, zone) -> str:
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _contact_name(row: dict) -> str:
    return Contact.name_of(row["contact_first_name"], row["contact_last_name"], row["contact_email"])


def deal_cards(rows) -> list[dict]:
    """:class:`DealCardOutput` built from :func:`pipelines.selectors.card_rows`: the board renders hundreds of
    cards, and model instances with DRF's field-by-field serialization would cost more than the queries. A test
    keeps both identical."""
    now, zone = timezone.now(), timezone.get_current_timezone()
    return [
        {
            "id": row["id"],
            "title": row["title"],
            "amount": format(row["amount"].quantize(CENT), "f"),
            "currency": row["currency"],
            "status": row["status"],
            "stage": {"id": row["stage_id"], "name": row["stage_name"]},
            "owner": None
            if row["owner_id"] is None
            else {
                "id": row["owner_id"],
                "email": row["owner_email"],
                "name": person_name(row["owner_first_name"], row["owner_last_name"]),
            },
            "contact": None if row["contact_id"] is None else {"id": row["contact_id"], "name": _contact_name(row)},
            "company": None if row["company_id"] is None else {"id": row["company_id"], "name": row["company_name"]},
            "expected_close_date": row["expected_close_date"].isoformat() if row["expected_close_date"] else None,
            "stage_entered_at": _instant(row["stage_entered_at"], zone),
            "is_rotting": _rots(row["status"], row["rotting_days"], row["stage_entered_at"], now),
            "tags": sorted(name for name in row["tag_names"] if name is not None),
            "updated_at": _instant(row["updated_at"], zone),
        }
        for row in rows
    ]


class DealInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, help_text="Default: the pipeline's.")
    pipeline = serializers.PrimaryKeyRelatedField(
        queryset=Pipeline.objects.all(), required=False, help_text="Default: the default pipeline."
    )
    stage = serializers.PrimaryKeyRelatedField(
        queryset=Stage.objects.all(), required=False, help_text="An open stage. Default: the pipeline's first."
    )
    contact = ScopedRecordField(model=Contact, permission=CONTACT_VIEW, required=False, allow_null=True)
    company = ScopedRecordField(model=Company, permission=COMPANY_VIEW, required=False, allow_null=True)
    expected_close_date = serializers.DateField(required=False, allow_null=True)
    owner = MemberField(required=False, allow_null=True, source="owner_id")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50, help_text=TAG_NAMES_HELP
    )
    custom_fields = serializers.DictField(required=False, source="custom_fields_values")

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if values.get("owner_id") is not None:
            values["owner_id"] = values["owner_id"].pk
        for name in ("contact", "company"):
            if name in values:
                record = values.pop(name)
                values[f"{name}_id"] = record.pk if record is not None else None
        return values


class DealUpdateInput(DealInput):
    """Stage and pipeline change through ``move-stage``, ``mark-won``, ``mark-lost`` and ``reopen``."""

    def validate(self, attrs):
        moved = [name for name in ("pipeline", "stage") if name in self.initial_data]
        if moved:
            raise serializers.ValidationError({moved[0]: "Use the move-stage action to change the stage."})
        return attrs


class MoveStageInput(serializers.Serializer):
    stage = serializers.PrimaryKeyRelatedField(queryset=Stage.objects.all())
    reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Required when the stage is the lost stage."
    )


class MarkLostInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ReopenInput(serializers.Serializer):
    stage = serializers.PrimaryKeyRelatedField(
        queryset=Stage.objects.all(),
        required=False,
        help_text="An open stage. Default: the last open stage the deal was in, else the first.",
    )


# --- board, forecast, stats, timeline ---


class BoardQuery(serializers.Serializer):
    per_stage = serializers.IntegerField(min_value=1, max_value=100, default=20)
    owner = serializers.IntegerField(required=False)


class BoardColumnOutput(serializers.Serializer):
    stage = DealStageOutput()
    count = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    weighted_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    deals = DealCardOutput(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="The stage's second page of deals (`GET /stages/{id}/deals/`), if any."
    )


class BoardOutput(serializers.Serializer):
    pipeline = RecordReference()
    currency = serializers.CharField()
    per_stage = serializers.IntegerField()
    stages = BoardColumnOutput(many=True)


class ForecastQuery(serializers.Serializer):
    start = MonthField(required=False, help_text="First month, YYYY-MM.")
    end = MonthField(required=False, help_text="Last month, YYYY-MM.")


class ForecastMonthOutput(serializers.Serializer):
    month = serializers.CharField()
    open_count = serializers.IntegerField()
    open_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    weighted_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    won_count = serializers.IntegerField()
    won_amount = serializers.DecimalField(max_digits=20, decimal_places=2)


class ForecastUnscheduledOutput(serializers.Serializer):
    open_count = serializers.IntegerField()
    open_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    weighted_amount = serializers.DecimalField(max_digits=20, decimal_places=2)


class ForecastTotalsOutput(serializers.Serializer):
    open_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    weighted_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    won_amount = serializers.DecimalField(max_digits=20, decimal_places=2)


class ForecastOutput(serializers.Serializer):
    pipeline = RecordReference()
    currency = serializers.CharField()
    months = ForecastMonthOutput(many=True)
    unscheduled = ForecastUnscheduledOutput()
    totals = ForecastTotalsOutput()


class ConversionOutput(serializers.Serializer):
    from_stage = RecordReference()
    to_stage = RecordReference()
    reached_from = serializers.IntegerField()
    reached_to = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class RottingStageOutput(serializers.Serializer):
    stage = RecordReference()
    count = serializers.IntegerField()


class RottingDealOutput(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    stage = RecordReference()
    days_in_stage = serializers.IntegerField()
    rotting_days = serializers.IntegerField()


class RottingOutput(serializers.Serializer):
    count = serializers.IntegerField()
    by_stage = RottingStageOutput(many=True)
    deals = RottingDealOutput(many=True, help_text="The longest-rotting deals first (at most 20).")


class DealCountsOutput(serializers.Serializer):
    open = serializers.IntegerField()
    won = serializers.IntegerField()
    lost = serializers.IntegerField()


class StatsOutput(serializers.Serializer):
    pipeline = RecordReference()
    currency = serializers.CharField()
    deals = DealCountsOutput()
    win_rate = serializers.FloatField(allow_null=True, help_text="won / (won + lost)")
    won_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    average_won_amount = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    average_sales_cycle_days = serializers.FloatField(allow_null=True, help_text="From creation to won.")
    conversion = ConversionOutput(many=True)
    rotting = RottingOutput()


class TimelineItemOutput(serializers.Serializer):
    type = serializers.ChoiceField(choices=["activity", "event"])
    at = serializers.DateTimeField()
    data = serializers.JSONField()  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
