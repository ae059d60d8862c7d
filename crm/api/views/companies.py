"""Companies: CRUD, merge, and the record actions."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from crm import selectors, services
from crm.models import Company
from crm.permissions import CONTACT_MERGE

from ..filters import CompanyFilter
from ..serializers import CompanyInput, CompanyOutput, CompanyStatsOutput, MergeInput
from .records import RecordViewSet, record_schema

DUPLICATE_DOMAIN = OpenApiResponse(
    description="`duplicate_domain`: another company has this domain; `errors` names `domain`."
)


@record_schema("companies", CompanyOutput, CompanyStatsOutput)
class CompanyViewSet(RecordViewSet):
    queryset = Company.objects.all()
    record_type = "company"
    action_permissions = {
        "list": "crm.company.view",
        "retrieve": "crm.company.view",
        "create": "crm.company.create",
        "partial_update": "crm.company.update",
        "destroy": "crm.company.delete",
        "merge": CONTACT_MERGE,
        "bulk_update": "crm.company.update",
        "bulk_delete": "crm.company.delete",
        "stats": "crm.company.view",
        "timeline": "crm.company.view",
    }
    filterset_class = CompanyFilter
    search_fields = ["name", "domain", "city"]
    ordering_fields = ["name", "domain", "industry", "created_at", "updated_at"]
    ordering = ["name", "pk"]

    def prepare_queryset(self, queryset):
        return selectors.companies()

    def stats_of(self, queryset) -> dict:
        return CompanyStatsOutput(selectors.company_stats(queryset)).data

    def _output(self, company: Company, **kwargs) -> Response:
        return Response(CompanyOutput(selectors.companies().get(pk=company.pk)).data, **kwargs)

    def list(self, request):
        return self.paginated(self.get_queryset(), CompanyOutput)

    @extend_schema(responses={200: CompanyOutput}, tags=["companies"])
    def retrieve(self, request, pk=None):
        return Response(CompanyOutput(self.get_object()).data)

    @extend_schema(
        request=CompanyInput,
        responses={201: CompanyOutput, 409: DUPLICATE_DOMAIN},
        tags=["companies"],
        description="A company's domain is stored normalized (`https://www.Example.com/` → `example.com`) and is "
        "unique among companies whatever the case: another company's domain is 409 `duplicate_domain` with "
        "`errors[]` naming `domain`.",
    )
    def create(self, request):
        data = CompanyInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        company = services.company_create(actor=self.access, **data.validated_data)
        return self._output(company, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=CompanyInput(partial=True), responses={200: CompanyOutput, 409: DUPLICATE_DOMAIN}, tags=["companies"]
    )
    def partial_update(self, request, pk=None):
        company = self.get_object()
        data = CompanyInput(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        return self._output(services.company_update(company=company, actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None}, tags=["companies"])
    def destroy(self, request, pk=None):
        services.company_delete(company=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=MergeInput,
        responses={200: CompanyOutput},
        tags=["companies"],
        description="Merge `duplicate` into this company: its contacts, activities, deals and converted leads move "
        "here, blank fields are filled from it, tags are united; then it is deleted.",
    )
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        survivor = self.get_object()
        duplicate = self.get_duplicate(request)
        return self._output(services.company_merge(survivor=survivor, duplicate=duplicate, actor=self.access))
