"""Activities (notes, calls, meetings, tasks) and the caller's open tasks."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.fields import parse_instant
from config.api.viewsets import OrganizationViewSet
from crm import selectors, services
from crm.models import Activity

from ..filters import ActivityFilter
from ..serializers import ActivityInput, ActivityOutput, ActivityUpdateInput


class ActivityViewSet(OrganizationViewSet):
    queryset = Activity.objects.all()
    action_permissions = {
        "list": "crm.activity.view",
        "retrieve": "crm.activity.view",
        "create": "crm.activity.create",
        "partial_update": "crm.activity.update",
        "destroy": "crm.activity.delete",
        "complete": "crm.activity.update",
        "my_tasks": "crm.activity.view",
    }
    filterset_class = ActivityFilter
    search_fields = ["subject", "body"]
    ordering_fields = ["created_at", "updated_at", "due_at", "completed_at"]
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        return selectors.activities()

    def _output(self, activity: Activity, **kwargs) -> Response:
        return Response(ActivityOutput(selectors.activities().get(pk=activity.pk)).data, **kwargs)

    @extend_schema(responses={200: ActivityOutput(many=True)}, tags=["activities"])
    def list(self, request):
        return self.paginated(self.get_queryset(), ActivityOutput)

    @extend_schema(responses={200: ActivityOutput}, tags=["activities"])
    def retrieve(self, request, pk=None):
        return Response(ActivityOutput(self.get_object()).data)

    @extend_schema(request=ActivityInput, responses={201: ActivityOutput}, tags=["activities"])
    def create(self, request):
        data = ActivityInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        activity = services.activity_create(actor=self.access, **data.validated_data)
        return self._output(activity, status=status.HTTP_201_CREATED)

    @extend_schema(request=ActivityUpdateInput(partial=True), responses={200: ActivityOutput}, tags=["activities"])
    def partial_update(self, request, pk=None):
        activity = self.get_object()
        data = ActivityUpdateInput(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        return self._output(services.activity_update(activity=activity, actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None}, tags=["activities"])
    def destroy(self, request, pk=None):
        services.activity_delete(activity=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: ActivityOutput}, tags=["activities"])
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        return self._output(services.activity_complete(activity=self.get_object(), actor=self.access))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "due_before",
                str,
                description=f"ISO date-time; default: {selectors.MY_TASKS_DAYS} days from now (a rolling window).",
            )
        ],
        responses={200: ActivityOutput(many=True)},
        tags=["activities"],
        description=f"Your open tasks that are overdue or due in the next {selectors.MY_TASKS_DAYS} days (or before "
        "`due_before`), soonest first. The window rolls with the clock: it never ends at a week boundary.",
    )
    @action(detail=False, methods=["get"], url_path="my-tasks")
    def my_tasks(self, request):
        raw = request.query_params.get("due_before")
        due_before = parse_instant(raw, name="due_before") if raw else selectors.task_horizon()
        tasks = selectors.open_tasks(self.get_queryset(), user_id=self.access.user_id, due_before=due_before)
        page = self.paginate_queryset(tasks)
        return self.get_paginated_response(ActivityOutput(page, many=True).data)
