"""``GET /exports/deals/``: the deal list as a file (CSV, XLSX, PDF), as crm exports its records.

The same base viewset as the other exports (``crm.api.transfer_views.ExportViewSet``): the deal list's filters,
search and ordering, the caller's scope for ``pipelines.deal.export`` (a Sales Rep exports their own deals), the
plan feature ``crm.import_export``, streamed CSV and XLSX written row by row. The columns are registered by
``pipelines.exports``.
"""

from __future__ import annotations

from crm.api.transfer_views import ExportViewSet, export_schema
from crm.choices import RecordType
from pipelines.models import Deal
from pipelines.permissions import DEAL_EXPORT

from .filters import DealFilter
from .views import DealViewSet


class DealExportViewSet(ExportViewSet):
    queryset = Deal.objects.all()
    record_type, resource = RecordType.DEAL, "deals"
    action_permissions = {"list": DEAL_EXPORT}
    filterset_class = DealFilter
    search_fields = DealViewSet.search_fields
    ordering_fields = DealViewSet.ordering_fields
    ordering = DealViewSet.ordering

    @export_schema("deals")
    def list(self, request):
        return super().list(request)
