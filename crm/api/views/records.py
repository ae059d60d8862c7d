"""What the record viewsets (leads, contacts, companies) share: bulk update and delete, statistics, the
timeline, and their schema."""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from config.api.viewsets import OrganizationViewSet
from crm import selectors, services

from ..serializers import BulkIdsInput, BulkResultOutput, BulkUpdateInput, MergeInput, RecordTimelineItemOutput

BULK_ERRORS = OpenApiResponse(
    description="`bulk_failed`: nothing changed; `errors` lists `{field, id, code, detail}` per refused item "
    "(`not_found` for ids outside your reach)."
)


class RecordViewSet(OrganizationViewSet):
    """What leads, contacts and companies share: bulk update and delete, statistics and the timeline.
    Subclasses declare the permissions of these actions like any other."""

    record_type: ClassVar[str]
    bulk_update_input: ClassVar[type[BulkUpdateInput]] = BulkUpdateInput
    filtered_actions = ("list", "stats")  # statistics count the filtered list

    def stats_of(self, queryset) -> dict:
        raise NotImplementedError

    @action(detail=False, methods=["post"], url_path="bulk-update")
    def bulk_update(self, request):
        data = self.bulk_update_input(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        ids = services.bulk_update(record_type=self.record_type, actor=self.access, **data.service_arguments())
        return Response(BulkResultOutput({"ids": ids, "count": len(ids)}).data)

    @action(detail=False, methods=["post"], url_path="bulk-delete")
    def bulk_delete(self, request):
        data = BulkIdsInput(data=request.data)
        data.is_valid(raise_exception=True)
        ids = services.bulk_delete(record_type=self.record_type, actor=self.access, ids=data.validated_data["ids"])
        return Response(BulkResultOutput({"ids": ids, "count": len(ids)}).data)

    @action(detail=False, methods=["get"])
    def stats(self, request):
        return Response(self.stats_of(self.filter_queryset(self.get_queryset())))

    @action(detail=True, methods=["get"])
    def timeline(self, request, pk=None):
        rows = selectors.timeline(record=self.get_object(), access=self.access)
        return self.page_of(rows, RecordTimelineItemOutput, load=selectors.timeline_items)

    def get_duplicate(self, request):
        """The record named by ``duplicate`` in the body, within the caller's reach for ``merge`` (else 404)."""
        data = MergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        duplicate = self.get_queryset().filter(pk=data.validated_data["duplicate"]).first()
        if duplicate is None:
            raise NotFound()
        return duplicate


def record_schema(tag: str, output, stats_output, bulk_input=BulkUpdateInput):
    return extend_schema_view(
        list=extend_schema(responses={200: output(many=True)}, tags=[tag]),
        bulk_update=extend_schema(
            request=bulk_input,
            responses={200: BulkResultOutput, 400: BULK_ERRORS},
            tags=[tag],
            description="Change owner, status and tags of every listed record, or of none.",
        ),
        bulk_delete=extend_schema(
            request=BulkIdsInput,
            responses={200: BulkResultOutput, 400: BULK_ERRORS},
            tags=[tag],
            description="Delete every listed record, or none.",
        ),
        stats=extend_schema(
            responses={200: stats_output},
            tags=[tag],
            description="Counts over the records you may see, with the list's filters and search applied.",
        ),
        timeline=extend_schema(
            responses={200: RecordTimelineItemOutput(many=True)},
            tags=[tag],
            description="The record's activities (those you may see) and domain events, newest first, paginated.",
        ),
    )
