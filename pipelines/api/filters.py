from django_filters import rest_framework as filters

from config.api import filters as api_filters
from crm.api.filters import RecordFilter
from crm.choices import RecordType
from pipelines.choices import DealStatus
from pipelines.models import Deal, Pipeline, Stage


class PipelineFilter(api_filters.FilterSet):
    is_archived = filters.BooleanFilter()

    class Meta:
        model = Pipeline
        fields = ["is_archived"]


class StageFilter(api_filters.FilterSet):
    pipeline = filters.NumberFilter(field_name="pipeline_id")

    class Meta:
        model = Stage
        fields = ["pipeline", "kind"]


class DealFilter(RecordFilter):
    record_type = RecordType.DEAL
    pipeline = filters.NumberFilter(field_name="pipeline_id")
    stage = filters.NumberFilter(field_name="stage_id")
    status = filters.MultipleChoiceFilter(choices=DealStatus.choices, distinct=False)
    contact = filters.NumberFilter(field_name="contact_id")
    company = filters.NumberFilter(field_name="company_id")
    amount_min = filters.NumberFilter(field_name="amount", lookup_expr="gte")
    amount_max = filters.NumberFilter(field_name="amount", lookup_expr="lte")
    close_after = filters.DateFilter(field_name="expected_close_date", lookup_expr="gte")
    close_before = filters.DateFilter(field_name="expected_close_date", lookup_expr="lte")
    won_after = api_filters.IsoDateTimeFilter(field_name="won_at", lookup_expr="gte")
    won_before = api_filters.IsoDateTimeFilter(field_name="won_at", lookup_expr="lt")

    class Meta:
        model = Deal
        fields = ["pipeline", "stage", "status", "owner"]
