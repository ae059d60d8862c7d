from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.viewsets import OrganizationViewSet
from crm import selectors, services
from crm.models import Lead

from .filters import LeadFilter
from .serializers import LeadDisqualifyInput, LeadInput, LeadOutput


class LeadViewSet(OrganizationViewSet):
    queryset = Lead.objects.all()
    action_permissions = {
        "list": "crm.lead.view",
        "retrieve": "crm.lead.view",
        "create": "crm.lead.create",
        "partial_update": "crm.lead.update",
        "destroy": "crm.lead.delete",
        "qualify": "crm.lead.convert",
        "disqualify": "crm.lead.convert",
    }
    filterset_class = LeadFilter
    search_fields = ["name", "email", "company_name"]
    ordering_fields = ["created_at", "updated_at", "name", "score", "estimated_value", "status"]
    ordering = ["-created_at", "-pk"]

    def scoped_queryset(self, queryset):
        return selectors.leads()

    @extend_schema(responses={200: LeadOutput(many=True)}, tags=["leads"])
    def list(self, request):
        return self.paginated(self.get_queryset(), LeadOutput)

    @extend_schema(responses={200: LeadOutput}, tags=["leads"])
    def retrieve(self, request, pk=None):
        return Response(LeadOutput(self.get_object()).data)

    @extend_schema(request=LeadInput, responses={201: LeadOutput}, tags=["leads"])
    def create(self, request):
        data = LeadInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        lead = services.lead_create(actor=self.access, **data.validated_data)
        return Response(LeadOutput(selectors.leads().get(pk=lead.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=LeadInput(partial=True), responses={200: LeadOutput}, tags=["leads"])
    def partial_update(self, request, pk=None):
        data = LeadInput(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        lead = services.lead_update(lead=self.get_object(), actor=self.access, **data.validated_data)
        return Response(LeadOutput(selectors.leads().get(pk=lead.pk)).data)

    @extend_schema(responses={204: None}, tags=["leads"])
    def destroy(self, request, pk=None):
        services.lead_delete(lead=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: LeadOutput}, tags=["leads"])
    @action(detail=True, methods=["post"])
    def qualify(self, request, pk=None):
        lead = services.lead_qualify(lead=self.get_object(), actor=self.access)
        return Response(LeadOutput(selectors.leads().get(pk=lead.pk)).data)

    @extend_schema(request=LeadDisqualifyInput, responses={200: LeadOutput}, tags=["leads"])
    @action(detail=True, methods=["post"])
    def disqualify(self, request, pk=None):
        data = LeadDisqualifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        lead = services.lead_disqualify(lead=self.get_object(), actor=self.access, reason=data.validated_data["reason"])
        return Response(LeadOutput(selectors.leads().get(pk=lead.pk)).data)
