"""Custom field definitions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from billing.features import Feature
from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER
from crm import selectors, services
from crm.models import CustomField
from crm.permissions import CUSTOM_FIELD_MANAGE

from ..filters import CustomFieldFilter
from ..serializers import CustomFieldInput, CustomFieldOutput, CustomFieldUpdateInput


class CustomFieldViewSet(OrganizationViewSet):
    """Custom field definitions: every member reads them (forms need them); defining them needs
    ``crm.custom_field.manage``. The plan feature ``crm.custom_fields`` gates the whole resource, and the number
    of definitions counts against the plan's ``custom_fields`` limit."""

    queryset = CustomField.objects.all()
    required_feature = Feature.CUSTOM_FIELDS
    action_permissions = {
        "list": MEMBER,
        "retrieve": MEMBER,
        "create": CUSTOM_FIELD_MANAGE,
        "partial_update": CUSTOM_FIELD_MANAGE,
        "destroy": CUSTOM_FIELD_MANAGE,
    }
    filterset_class = CustomFieldFilter
    search_fields = ["key", "label"]
    ordering_fields = ["record_type", "position", "key", "created_at"]
    ordering = ["record_type", "position", "pk"]

    def prepare_queryset(self, queryset):
        return selectors.custom_fields()

    @extend_schema(responses={200: CustomFieldOutput(many=True)}, tags=["custom fields"])
    def list(self, request):
        return self.paginated(self.get_queryset(), CustomFieldOutput)

    @extend_schema(responses={200: CustomFieldOutput}, tags=["custom fields"])
    def retrieve(self, request, pk=None):
        return Response(CustomFieldOutput(self.get_object()).data)

    @extend_schema(request=CustomFieldInput, responses={201: CustomFieldOutput}, tags=["custom fields"])
    def create(self, request):
        data = CustomFieldInput(data=request.data)
        data.is_valid(raise_exception=True)
        field = services.custom_field_create(actor=self.access, **data.validated_data)
        return Response(CustomFieldOutput(field).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CustomFieldUpdateInput, responses={200: CustomFieldOutput}, tags=["custom fields"])
    def partial_update(self, request, pk=None):
        field = self.get_object()
        data = CustomFieldUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        field = services.custom_field_update(field=field, actor=self.access, **data.validated_data)
        return Response(CustomFieldOutput(field).data)

    @extend_schema(
        responses={204: None}, tags=["custom fields"], description="Also removes the field's values from every record."
    )
    def destroy(self, request, pk=None):
        services.custom_field_delete(field=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)
