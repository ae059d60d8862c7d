"""Tags: every member reads them; managing them needs ``crm.tag.manage``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER
from crm import selectors, services
from crm.models import Tag
from crm.permissions import TAG_MANAGE

from ..filters import TagFilter
from ..serializers import TagInput, TagOutput


class TagViewSet(OrganizationViewSet):
    queryset = Tag.objects.all()
    action_permissions = {
        "list": MEMBER,
        "retrieve": MEMBER,
        "create": TAG_MANAGE,
        "partial_update": TAG_MANAGE,
        "destroy": TAG_MANAGE,
    }
    filterset_class = TagFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name", "pk"]

    def prepare_queryset(self, queryset):
        return selectors.tags()

    @extend_schema(responses={200: TagOutput(many=True)}, tags=["tags"])
    def list(self, request):
        return self.paginated(self.get_queryset(), TagOutput)

    @extend_schema(responses={200: TagOutput}, tags=["tags"])
    def retrieve(self, request, pk=None):
        return Response(TagOutput(self.get_object()).data)

    @extend_schema(request=TagInput, responses={201: TagOutput}, tags=["tags"])
    def create(self, request):
        data = TagInput(data=request.data)
        data.is_valid(raise_exception=True)
        tag = services.tag_create(actor=self.access, **data.validated_data)
        return Response(TagOutput(tag).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TagInput(partial=True), responses={200: TagOutput}, tags=["tags"])
    def partial_update(self, request, pk=None):
        tag = self.get_object()
        data = TagInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(TagOutput(services.tag_update(tag=tag, actor=self.access, **data.validated_data)).data)

    @extend_schema(responses={204: None}, tags=["tags"])
    def destroy(self, request, pk=None):
        services.tag_delete(tag=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)
