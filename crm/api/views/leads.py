"""Leads: CRUD, qualification, conversion, and the record actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from crm import selectors, services
from crm.models import Lead
from crm.permissions import LEAD_CONVERT

from ..filters import LeadFilter
from ..serializers import (
    LeadBulkUpdateInput,
    LeadConversionOutput,
    LeadConvertInput,
    LeadDisqualifyInput,
    LeadInput,
    LeadOutput,
    LeadStatsOutput,
)
from .records import RecordViewSet, record_schema


@record_schema("leads", LeadOutput, LeadStatsOutput, LeadBulkUpdateInput)
class LeadViewSet(RecordViewSet):
    queryset = Lead.objects.all()
    record_type = "lead"
    bulk_update_input = LeadBulkUpdateInput
    action_permissions = {
        "list": "crm.lead.view",
        "retrieve": "crm.lead.view",
        "create": "crm.lead.create",
        "partial_update": "crm.lead.update",
        "destroy": "crm.lead.delete",
        "qualify": LEAD_CONVERT,
        "disqualify": LEAD_CONVERT,
        "convert": LEAD_CONVERT,
        "bulk_update": "crm.lead.update",
        "bulk_delete": "crm.lead.delete",
        "stats": "crm.lead.view",
        "timeline": "crm.lead.view",
    }
    filterset_class = LeadFilter
    search_fields = ["name", "email", "company_name"]
    ordering_fields = ["created_at", "updated_at", "name", "score", "estimated_value", "status"]
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        return selectors.lead_list() if self.action == "list" else selectors.leads()

    def stats_of(self, queryset) -> dict:
        return LeadStatsOutput(selectors.lead_stats(queryset)).data

    def _output(self, lead: Lead) -> Response:
        return Response(LeadOutput(selectors.leads().get(pk=lead.pk)).data)

    def list(self, request):
        return self.paginated(self.get_queryset(), LeadOutput, load=selectors.lead_items)

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
        return self._output(services.lead_update(lead=self.get_object(), actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None}, tags=["leads"])
    def destroy(self, request, pk=None):
        services.lead_delete(lead=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: LeadOutput}, tags=["leads"])
    @action(detail=True, methods=["post"])
    def qualify(self, request, pk=None):
        return self._output(services.lead_qualify(lead=self.get_object(), actor=self.access))

    @extend_schema(request=LeadDisqualifyInput, responses={200: LeadOutput}, tags=["leads"])
    @action(detail=True, methods=["post"])
    def disqualify(self, request, pk=None):
        data = LeadDisqualifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        lead = services.lead_disqualify(lead=self.get_object(), actor=self.access, reason=data.validated_data["reason"])
        return self._output(lead)

    @extend_schema(
        request=LeadConvertInput,
        responses={200: LeadConversionOutput},
        tags=["leads"],
        description="Convert the lead into a contact (matched by e-mail, else new), its company (matched by e-mail "
        "domain or name, else new) and optionally a deal, atomically. 409 `lead_already_converted` the second time. "
        "Matching stays within your reach: only a contact you may edit and companies you may see are matched. "
        "When a contact you may not edit has the lead's e-mail (e-mail addresses are unique), the answer is 400 "
        "`out_of_scope` on `contact` and nothing changes; a company you may not see is passed over (a new one is "
        "made when the lead names a company).",
    )
    @action(detail=True, methods=["post"])
    def convert(self, request, pk=None):
        lead = self.get_object()
        data = LeadConvertInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        result = services.lead_convert(lead=lead, actor=self.access, **data.validated_data)
        body = {
            "lead": selectors.leads().get(pk=result.lead.pk),
            "contact": _converted(result.contact, result.contact_created),
            "company": _converted(result.company, result.company_created) if result.company else None,
            "deal": _converted(result.deal, True) if result.deal else None,
        }
        return Response(LeadConversionOutput(body).data)


def _converted(record, created: bool) -> dict:
    return {"id": record.pk, "name": str(record), "created": created}
