"""Pipelines, stages and deals.

Plan gating: the organization's first pipeline is provisioned (at registration, or on first use), so creating
another one, or unarchiving one (which makes a second active pipeline), is what ``Feature.MULTIPLE_PIPELINES``
gates, declared per action. The forecast is ``Feature.FORECAST``. Board, forecast and statistics show deals, so
they need ``pipelines.deal.view`` and count only the deals within its scope.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils.urls import replace_query_param

from billing.features import Feature
from config.api.viewsets import OrganizationViewSet
from pipelines import selectors, services
from pipelines.models import Pipeline, Stage
from pipelines.permissions import (
    DEAL_CLOSE,
    DEAL_CREATE,
    DEAL_DELETE,
    DEAL_MOVE_STAGE,
    DEAL_UPDATE,
    DEAL_VIEW,
    PIPELINE_MANAGE,
    PIPELINE_VIEW,
)

from .filters import DealFilter, PipelineFilter, StageFilter
from .serializers import (
    BoardOutput,
    BoardQuery,
    DealCardOutput,
    DealInput,
    DealOutput,
    DealStageOutput,
    DealUpdateInput,
    ForecastOutput,
    ForecastQuery,
    MarkLostInput,
    MoveStageInput,
    PipelineInput,
    PipelineOutput,
    PipelineUpdateInput,
    ReopenInput,
    StageDeleteInput,
    StageInput,
    StageOutput,
    StageReorderInput,
    StageUpdateInput,
    StatsOutput,
    TimelineItemOutput,
    deal_cards,
)

TAGS_PIPELINES, TAGS_DEALS = ["pipelines"], ["deals"]
STAGE_FIELDS = DealStageOutput.Meta.fields


def _stage_deals_url(request, stage: Stage, per_stage: int) -> str:
    """The second page of a stage's deals, as the board shows the first: ``GET /stages/{id}/deals/``."""
    url = request.build_absolute_uri(reverse("stage-deals", kwargs={"pk": stage.pk}))
    return replace_query_param(replace_query_param(url, "page", 2), "page_size", per_stage)


def board_body(request, pipeline: Pipeline, columns: list[selectors.BoardColumn], per_stage: int) -> dict:
    stages = []
    for column in columns:
        more = column.count > per_stage
        stages.append(
            {
                "stage": {field: getattr(column.stage, field) for field in STAGE_FIELDS},
                "count": column.count,
                "amount": format(column.amount, "f"),
                "weighted_amount": format(column.weighted_amount, "f"),
                "deals": deal_cards(column.deals),
                "next": _stage_deals_url(request, column.stage, per_stage) if more else None,
            }
        )
    return {
        "pipeline": {"id": pipeline.pk, "name": pipeline.name},
        "currency": pipeline.currency,
        "per_stage": per_stage,
        "stages": stages,
    }


class PipelineViewSet(OrganizationViewSet):
    queryset = Pipeline.objects.all()
    action_permissions = {
        "list": PIPELINE_VIEW,
        "retrieve": PIPELINE_VIEW,
        "create": PIPELINE_MANAGE,
        "partial_update": PIPELINE_MANAGE,
        "destroy": PIPELINE_MANAGE,
        "set_default": PIPELINE_MANAGE,
        "archive": PIPELINE_MANAGE,
        "unarchive": PIPELINE_MANAGE,
        "reorder_stages": PIPELINE_MANAGE,
        "board": DEAL_VIEW,
        "forecast": DEAL_VIEW,
        "stats": DEAL_VIEW,
    }
    action_features = {
        "create": Feature.MULTIPLE_PIPELINES,
        "unarchive": Feature.MULTIPLE_PIPELINES,
        "forecast": Feature.FORECAST,
    }
    filterset_class = PipelineFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["-is_default", "name", "pk"]

    def prepare_queryset(self, queryset):
        if self.action == "board":  # the board reads the stages in its own query
            return queryset
        return selectors.pipelines()

    def _output(self, pipeline: Pipeline) -> Response:
        return Response(PipelineOutput(selectors.pipelines().get(pk=pipeline.pk)).data)

    @extend_schema(responses={200: PipelineOutput(many=True)}, tags=TAGS_PIPELINES)
    def list(self, request):
        return self.paginated(self.get_queryset(), PipelineOutput)

    @extend_schema(responses={200: PipelineOutput}, tags=TAGS_PIPELINES)
    def retrieve(self, request, pk=None):
        return Response(PipelineOutput(self.get_object()).data)

    @extend_schema(request=PipelineInput, responses={201: PipelineOutput}, tags=TAGS_PIPELINES)
    def create(self, request):
        data = PipelineInput(data=request.data)
        data.is_valid(raise_exception=True)
        pipeline = services.pipeline_create(actor=self.access, **data.validated_data)
        return Response(PipelineOutput(selectors.pipelines().get(pk=pipeline.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PipelineUpdateInput, responses={200: PipelineOutput}, tags=TAGS_PIPELINES)
    def partial_update(self, request, pk=None):
        pipeline = self.get_object()
        data = PipelineUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return self._output(services.pipeline_update(pipeline=pipeline, actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None}, tags=TAGS_PIPELINES)
    def destroy(self, request, pk=None):
        services.pipeline_delete(pipeline=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: PipelineOutput}, tags=TAGS_PIPELINES)
    @action(detail=True, methods=["post"], url_path="set-default")
    def set_default(self, request, pk=None):
        return self._output(services.pipeline_set_default(pipeline=self.get_object(), actor=self.access))

    @extend_schema(request=None, responses={200: PipelineOutput}, tags=TAGS_PIPELINES)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        return self._output(services.pipeline_archive(pipeline=self.get_object(), actor=self.access))

    @extend_schema(request=None, responses={200: PipelineOutput}, tags=TAGS_PIPELINES)
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        return self._output(services.pipeline_unarchive(pipeline=self.get_object(), actor=self.access))

    @extend_schema(
        request=StageReorderInput,
        responses={200: PipelineOutput},
        tags=TAGS_PIPELINES,
        description="Put the pipeline's stages in the order given (every stage id, once); answers the pipeline with "
        "its stages in their new order.",
    )
    @action(detail=True, methods=["post"], url_path="reorder-stages")
    def reorder_stages(self, request, pk=None):
        pipeline = self.get_object()
        data = StageReorderInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.stage_reorder(pipeline=pipeline, actor=self.access, stage_ids=data.validated_data["stages"])
        return self._output(pipeline)

    @extend_schema(
        parameters=[BoardQuery],
        responses={200: BoardOutput},
        tags=TAGS_PIPELINES,
        description=(
            "Every stage with its deal count, amount, weighted amount (amount × probability) and first page of "
            "deals (`per_stage`, at most 100). A stage's further pages: its `next` link, `GET /stages/{id}/deals/`."
        ),
    )
    @action(detail=True, methods=["get"])
    def board(self, request, pk=None):
        pipeline = self.get_object()
        query = BoardQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        per_stage = params["per_stage"]
        columns = selectors.board(
            pipeline=pipeline, access=self.access, per_stage=per_stage, owner_id=params.get("owner")
        )
        return Response(board_body(request, pipeline, columns, per_stage))

    @extend_schema(parameters=[ForecastQuery], responses={200: ForecastOutput}, tags=TAGS_PIPELINES)
    @action(detail=True, methods=["get"])
    def forecast(self, request, pk=None):
        pipeline = self.get_object()
        query = ForecastQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        bounds = {name: month for name, month in query.validated_data.items() if month}
        forecast = selectors.forecast(pipeline=pipeline, access=self.access, **bounds)
        return Response(ForecastOutput({**forecast, "pipeline": pipeline}).data)

    @extend_schema(responses={200: StatsOutput}, tags=TAGS_PIPELINES)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        pipeline = self.get_object()
        stats = selectors.stats(pipeline=pipeline, access=self.access)
        return Response(StatsOutput({**stats, "pipeline": pipeline}).data)


class StageViewSet(OrganizationViewSet):
    queryset = Stage.objects.all()
    action_permissions = {
        "list": PIPELINE_VIEW,
        "retrieve": PIPELINE_VIEW,
        "create": PIPELINE_MANAGE,
        "partial_update": PIPELINE_MANAGE,
        "destroy": PIPELINE_MANAGE,
        "deals": DEAL_VIEW,
    }
    filterset_class = StageFilter
    ordering_fields = ["position", "name"]
    ordering = ["pipeline_id", "position"]

    def prepare_queryset(self, queryset):
        return selectors.stages()

    @extend_schema(responses={200: StageOutput(many=True)}, tags=TAGS_PIPELINES)
    def list(self, request):
        return self.paginated(self.get_queryset(), StageOutput)

    @extend_schema(responses={200: StageOutput}, tags=TAGS_PIPELINES)
    def retrieve(self, request, pk=None):
        return Response(StageOutput(self.get_object()).data)

    @extend_schema(request=StageInput, responses={201: StageOutput}, tags=TAGS_PIPELINES)
    def create(self, request):
        data = StageInput(data=request.data)
        data.is_valid(raise_exception=True)
        stage = services.stage_create(actor=self.access, **data.validated_data)
        return Response(StageOutput(stage).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=StageUpdateInput, responses={200: StageOutput}, tags=TAGS_PIPELINES)
    def partial_update(self, request, pk=None):
        stage = self.get_object()
        data = StageUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        stage = services.stage_update(stage=stage, actor=self.access, **data.validated_data)
        return Response(StageOutput(stage).data)

    @extend_schema(
        parameters=[OpenApiParameter("move_to", int, description="Target stage for the stage's deals.")],
        request=StageDeleteInput,
        responses={204: None},
        tags=TAGS_PIPELINES,
    )
    def destroy(self, request, pk=None):
        stage = self.get_object()
        raw = {"move_to": request.query_params["move_to"]} if "move_to" in request.query_params else request.data
        data = StageDeleteInput(data=raw or {})
        data.is_valid(raise_exception=True)
        services.stage_delete(stage=stage, actor=self.access, move_to=data.validated_data.get("move_to"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: DealCardOutput(many=True)},
        tags=TAGS_PIPELINES,
        description="The stage's deals you may see, as cards, newest first (the board's columns, page by page).",
    )
    @action(detail=True, methods=["get"])
    def deals(self, request, pk=None):
        rows = selectors.card_rows(selectors.stage_deals(stage=self.get_object(), access=self.access))
        return self.page_of(rows, None, load=deal_cards)


class DealViewSet(OrganizationViewSet):
    queryset = selectors.deals()
    action_permissions = {
        "list": DEAL_VIEW,
        "retrieve": DEAL_VIEW,
        "create": DEAL_CREATE,
        "partial_update": DEAL_UPDATE,
        "destroy": DEAL_DELETE,
        "move_stage": DEAL_MOVE_STAGE,
        "mark_won": DEAL_CLOSE,
        "mark_lost": DEAL_CLOSE,
        "reopen": DEAL_CLOSE,
        "timeline": DEAL_VIEW,
    }
    filterset_class = DealFilter
    search_fields = ["title", "company__name", "contact__first_name", "contact__last_name", "contact__email"]
    ordering_fields = [
        "created_at",
        "updated_at",
        "title",
        "amount",
        "expected_close_date",
        "stage_entered_at",
        "won_at",
        "status",
    ]
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        return selectors.deals()

    def _output(self, deal) -> Response:
        return Response(DealOutput(selectors.deals().get(pk=deal.pk)).data)

    @extend_schema(responses={200: DealOutput(many=True)}, tags=TAGS_DEALS)
    def list(self, request):
        return self.paginated(self.get_queryset(), DealOutput)

    @extend_schema(responses={200: DealOutput}, tags=TAGS_DEALS)
    def retrieve(self, request, pk=None):
        return Response(DealOutput(self.get_object()).data)

    @extend_schema(request=DealInput, responses={201: DealOutput}, tags=TAGS_DEALS)
    def create(self, request):
        data = DealInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        deal = services.deal_create(actor=self.access, **data.validated_data)
        return Response(DealOutput(selectors.deals().get(pk=deal.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DealUpdateInput(partial=True), responses={200: DealOutput}, tags=TAGS_DEALS)
    def partial_update(self, request, pk=None):
        deal = self.get_object()
        data = DealUpdateInput(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        return self._output(services.deal_update(deal=deal, actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None}, tags=TAGS_DEALS)
    def destroy(self, request, pk=None):
        services.deal_delete(deal=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=MoveStageInput,
        responses={
            200: DealOutput,
            409: OpenApiResponse(description="`deal_closed`: the deal is won or lost; reopen it first."),
        },
        tags=TAGS_DEALS,
        description="Move an open deal to another stage of its pipeline. Moving it into the won or lost stage wins "
        "or loses it (`reason` required for lost; needs `pipelines.deal.close` too). A won or lost deal is not moved: "
        "the answer is 409 `deal_closed` until it is reopened with `POST /deals/{id}/reopen/`. Moving a deal to the "
        "stage it is in changes nothing.",
    )
    @action(detail=True, methods=["post"], url_path="move-stage")
    def move_stage(self, request, pk=None):
        deal = self.get_object()
        data = MoveStageInput(data=request.data)
        data.is_valid(raise_exception=True)
        deal = services.deal_move_stage(
            deal=deal,
            stage=data.validated_data["stage"],
            actor=self.access,
            reason=data.validated_data.get("reason", ""),
        )
        return self._output(deal)

    @extend_schema(request=None, responses={200: DealOutput}, tags=TAGS_DEALS)
    @action(detail=True, methods=["post"], url_path="mark-won")
    def mark_won(self, request, pk=None):
        return self._output(services.deal_mark_won(deal=self.get_object(), actor=self.access))

    @extend_schema(request=MarkLostInput, responses={200: DealOutput}, tags=TAGS_DEALS)
    @action(detail=True, methods=["post"], url_path="mark-lost")
    def mark_lost(self, request, pk=None):
        deal = self.get_object()
        data = MarkLostInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._output(services.deal_mark_lost(deal=deal, actor=self.access, **data.validated_data))

    @extend_schema(request=ReopenInput, responses={200: DealOutput}, tags=TAGS_DEALS)
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        deal = self.get_object()
        data = ReopenInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._output(services.deal_reopen(deal=deal, actor=self.access, stage=data.validated_data.get("stage")))

    @extend_schema(
        responses={200: TimelineItemOutput(many=True)},
        tags=TAGS_DEALS,
        description="The deal's activities (those you may see), stage changes and domain events, newest first, "
        "paginated like the timelines of leads, contacts and companies.",
    )
    @action(detail=True, methods=["get"])
    def timeline(self, request, pk=None):
        rows = selectors.deal_timeline(deal=self.get_object(), access=self.access)
        return self.page_of(rows, TimelineItemOutput, load=selectors.deal_timeline_items)
