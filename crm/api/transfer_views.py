"""Imports (``/imports/``) and exports (``/exports/{contacts,companies,leads}/``) of CRM records; apps above crm
export theirs with the same base (``/exports/deals/``: ``pipelines.api.export_views``).

Authorization stays declared. Exports declare ``crm.<type>.export``, so the base viewset limits the rows to the
caller's scope for that permission (a Sales Rep exports their own records). An import's permission depends on
the record type in the request body, so ``/imports/`` is declared for members and the import service checks
``crm.<type>.import`` (403 ``permission_denied`` naming the permission); a member sees the import jobs of the
record types they may import: their own, and everyone's where they may see all records of that type. Everything
here needs the plan feature ``crm.import_export``.
"""

from __future__ import annotations

from typing import ClassVar

from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from billing.features import Feature
from config.api.errors import ValidationFailed
from config.api.parsers import FormParser, MultiPartParser
from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER, Scope
from crm import exports, imports
from crm.choices import ContactStatus, ImportStatus, LeadSource, LifecycleStage, RecordType
from crm.models import Company, Contact, ImportJob, Lead

from . import filters as list_filters
from .transfer_serializers import ImportCreateInput, ImportJobOutput

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx", "pdf")
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the other form fields around the file


# --- content negotiation: ``?format=csv|xlsx|pdf`` picks the file; errors stay problem documents (JSON) ---


class _FileRenderer(JSONRenderer):
    """Announces a file format to content negotiation; successful answers are files and bypass it, error
    answers are problem documents and render as JSON."""


class CsvRenderer(_FileRenderer):
    media_type, format = "text/csv", "csv"


class XlsxRenderer(_FileRenderer):
    media_type, format = XLSX_TYPE, "xlsx"


class PdfRenderer(_FileRenderer):
    media_type, format = "application/pdf", "pdf"


class LenientNegotiation(DefaultContentNegotiation):
    """An unknown ``?format=`` reaches the view, which answers 400 ``unsupported_format`` rather than 404."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:
            return renderers[0], renderers[0].media_type


# --- imports ---


class ImportJobViewSet(OrganizationViewSet):
    queryset = ImportJob.objects.all()
    required_feature = Feature.IMPORT_EXPORT
    action_permissions = {"list": MEMBER, "retrieve": MEMBER, "create": MEMBER, "errors": MEMBER}
    parser_classes = [MultiPartParser, FormParser]
    renderer_classes = [JSONRenderer, CsvRenderer]
    content_negotiation_class = LenientNegotiation
    lookup_value_regex = r"[^/.]+"  # a UUID; anything else is the same 404 as an unknown job
    ordering = ["-created_at"]
    ordering_fields = ["created_at"]
    search_fields: ClassVar[list[str]] = []

    def prepare_queryset(self, queryset):
        access = self.access
        importable = [kind for kind in imports.IMPORTABLE if access.scope(f"crm.{kind}.import") is not None]
        sees_all = [kind for kind in importable if access.scope(f"crm.{kind}.view") == Scope.ALL]
        mine = Q(created_by_id=access.user_id) if access.user_id is not None else Q(pk__in=[])
        visible = queryset.filter(record_type__in=importable).filter(mine | Q(record_type__in=sees_all))
        return visible.select_related("created_by")

    @extend_schema(
        request={"multipart/form-data": ImportCreateInput},
        responses={
            202: ImportJobOutput,
            400: OpenApiResponse(
                description="`empty_file`, `invalid_encoding`, `too_many_rows`, `unsupported_file_type`, "
                "`invalid_mapping` (with `errors`: `unknown_column`, `unknown_field`, `duplicate_field`, "
                "`missing_required_field`), `validation_error`"
            ),
            403: OpenApiResponse(description="`permission_denied` (`crm.<record_type>.import`)"),
            413: OpenApiResponse(description="`file_too_large`"),
        },
        tags=["imports"],
    )
    def create(self, request):
        """Upload a CSV or XLSX file of contacts, companies or leads; it is imported in the background. A row naming
        a company or a tag that does not exist fails (`unknown_company`, `unknown_tag`) unless you may create it
        (`crm.company.create`, `crm.tag.manage`)."""
        limit = imports.max_bytes()
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:  # refused before the body is read
            raise imports.FileTooLarge(f"The file is larger than {limit:,} bytes.", extra={"max_bytes": limit})
        data = ImportCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = imports.import_job_create(
            actor=self.access,
            upload=data.validated_data["file"],
            record_type=data.validated_data["record_type"],
            mapping=data.validated_data.get("mapping"),
            dedupe_policy=data.validated_data["dedupe_policy"],
        )
        job.refresh_from_db()  # the task may have run already (eager mode)
        body = ImportJobOutput(job, context=self.get_serializer_context()).data
        location = request.build_absolute_uri(f"{request.path}{job.pk}/")
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(responses={200: ImportJobOutput(many=True)}, tags=["imports"])
    def list(self, request):
        """Import jobs, newest first."""
        return self.paginated(self.get_queryset(), ImportJobOutput)

    @extend_schema(responses={200: ImportJobOutput}, tags=["imports"])
    def retrieve(self, request, pk=None):
        """An import's progress: rows processed of the total, and what became of them."""
        return Response(ImportJobOutput(self.get_object(), context=self.get_serializer_context()).data)

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.BINARY, description="row, field, code, message, then the row's cells"
            ),
            409: OpenApiResponse(description="`import_not_finished`"),
        },
        tags=["imports"],
    )
    @action(detail=True, methods=["get"])
    def errors(self, request, pk=None):
        """The rows that were not imported, one line per problem, as CSV."""
        job = self.get_object()
        if job.status not in (ImportStatus.COMPLETED, ImportStatus.FAILED):
            raise imports.ImportNotFinished()
        response = StreamingHttpResponse(imports.errors_csv_lines(job), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response


# --- exports ---


class _ContactExportFilter(list_filters.RecordFilter):
    """Stand-in until the contacts list has its own filter: the same fields, read from the same request."""

    record_type = RecordType.CONTACT
    status = filters.MultipleChoiceFilter(choices=ContactStatus.choices, distinct=False)
    lifecycle_stage = filters.MultipleChoiceFilter(choices=LifecycleStage.choices, distinct=False)
    source = filters.MultipleChoiceFilter(choices=LeadSource.choices, distinct=False)
    company = filters.NumberFilter(field_name="company_id")
    do_not_contact = filters.BooleanFilter()

    class Meta:
        model = Contact
        fields = ["status", "lifecycle_stage", "source", "owner", "company", "do_not_contact"]


class _CompanyExportFilter(list_filters.RecordFilter):
    """Stand-in until the companies list has its own filter."""

    record_type = RecordType.COMPANY
    industry = filters.CharFilter(lookup_expr="iexact")
    size = filters.CharFilter()
    country = filters.CharFilter(lookup_expr="iexact")
    domain = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Company
        fields = ["industry", "size", "country", "domain", "owner"]


def _list_filter(name: str, fallback):
    return getattr(list_filters, name, None) or fallback


def _list_view(name: str):
    from . import views

    return getattr(views, name, None)


class ExportViewSet(OrganizationViewSet):
    """The base of every export: a record type's list (its queryset, filters, search and ordering, declared by the
    subclass) as a file. Apps above crm subclass it for their records (``pipelines.api.export_views``)."""

    required_feature = Feature.IMPORT_EXPORT
    renderer_classes = [JSONRenderer, CsvRenderer, XlsxRenderer, PdfRenderer]
    content_negotiation_class = LenientNegotiation
    pagination_class = None
    record_type: ClassVar[str]
    resource: ClassVar[str]

    def prepare_queryset(self, queryset):
        return queryset

    def _format(self, request) -> str:
        wanted = request.query_params.get("format")
        if wanted is None:
            accepted = getattr(request.accepted_renderer, "format", "")
            wanted = accepted if accepted in FORMATS else "csv"
        if wanted not in FORMATS:
            raise ValidationFailed("Use format=csv, xlsx or pdf.", field="format", code="unsupported_format")
        return wanted

    def list(self, request):
        wanted = self._format(request)
        export = exports.Export(self.filter_queryset(self.get_queryset()), self.record_type)
        name = f"{self.resource}-{timezone.now():%Y%m%d-%H%M%S}.{wanted}"
        if wanted == "pdf":
            zone = exports.export_time_zone()
            title = f"{self.resource.capitalize()} — {timezone.now().astimezone(zone):%Y-%m-%d %H:%M} {zone}"
            pdf = HttpResponse(exports.pdf_bytes(export, title=title), content_type="application/pdf")
            pdf["Content-Disposition"] = f'attachment; filename="{name}"'
            return pdf
        if wanted == "xlsx":
            return FileResponse(
                exports.xlsx_file(export, sheet_title=self.resource),
                as_attachment=True,
                filename=name,
                content_type=XLSX_TYPE,
            )
        response = StreamingHttpResponse(exports.csv_chunks(export), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


def export_schema(resource: str):
    return extend_schema(
        summary=f"Export {resource}",
        description=f"The {resource} list with the list's filters, search and ordering, as a file: CSV (streamed), "
        "XLSX or PDF (at most `EXPORT_PDF_MAX_ROWS` rows). CSV: text that a spreadsheet would run as a formula is "
        "written with a leading single quote; date-times are ISO 8601 with their offset. XLSX: text is written as "
        "text cells, which are never evaluated (no quote added); date-times are in the organization's time zone "
        "(`time_zone` of `/organizations/current/`, else the server's `TIME_ZONE`), named in the column "
        "header, e.g. `created_at (UTC)`.",
        parameters=[OpenApiParameter("format", str, enum=list(FORMATS), default="csv")],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, XLSX_TYPE): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY),
            400: OpenApiResponse(description="`unsupported_format`, `too_many_rows_for_pdf`, `validation_error`"),
        },
        tags=["exports"],
    )


_lead_view = _list_view("LeadViewSet")
_contact_view = _list_view("ContactViewSet")
_company_view = _list_view("CompanyViewSet")


class LeadExportViewSet(ExportViewSet):
    queryset = Lead.objects.all()
    record_type, resource = RecordType.LEAD, "leads"
    action_permissions = {"list": "crm.lead.export"}
    filterset_class = list_filters.LeadFilter
    search_fields = getattr(_lead_view, "search_fields", ["name", "email", "company_name"])
    ordering_fields = getattr(_lead_view, "ordering_fields", ["created_at", "updated_at", "name"])
    ordering = getattr(_lead_view, "ordering", ["-created_at", "-pk"])

    @export_schema("leads")
    def list(self, request):
        return super().list(request)


class ContactExportViewSet(ExportViewSet):
    queryset = Contact.objects.all()
    record_type, resource = RecordType.CONTACT, "contacts"
    action_permissions = {"list": "crm.contact.export"}
    filterset_class = _list_filter("ContactFilter", _ContactExportFilter)
    search_fields = getattr(_contact_view, "search_fields", ["first_name", "last_name", "email", "phone"])
    ordering_fields = getattr(_contact_view, "ordering_fields", ["created_at", "updated_at", "last_name", "email"])
    ordering = getattr(_contact_view, "ordering", ["last_name", "first_name", "pk"])

    @export_schema("contacts")
    def list(self, request):
        return super().list(request)


class CompanyExportViewSet(ExportViewSet):
    queryset = Company.objects.all()
    record_type, resource = RecordType.COMPANY, "companies"
    action_permissions = {"list": "crm.company.export"}
    filterset_class = _list_filter("CompanyFilter", _CompanyExportFilter)
    search_fields = getattr(_company_view, "search_fields", ["name", "domain"])
    ordering_fields = getattr(_company_view, "ordering_fields", ["created_at", "updated_at", "name"])
    ordering = getattr(_company_view, "ordering", ["name", "pk"])

    @export_schema("companies")
    def list(self, request):
        return super().list(request)
