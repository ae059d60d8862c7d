"""The CRM core API: leads, contacts, companies, activities, tags and custom field definitions.

Views are glue: validate input, call a service or selector, serialize output. Authorization is declared
(``action_permissions``); the base viewset limits every queryset to the caller's scope for the action's
permission, so a record of another organization, an unknown id and a record outside ``own`` scope are the same
404. Bulk actions report such ids per item as ``not_found``.
"""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from billing.features import Feature
from config.api.fields import parse_instant
from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER
from crm import selectors, services
from crm.models import Activity, Company, Contact, CustomField, Lead, Tag
from crm.permissions import CONTACT_MERGE, CUSTOM_FIELD_MANAGE, LEAD_CONVERT, TAG_MANAGE

from .filters import ActivityFilter, CompanyFilter, ContactFilter, CustomFieldFilter, LeadFilter, TagFilter
from .serializers import (
    ActivityInput,
    ActivityOutput,
    ActivityUpdateInput,
    BulkIdsInput,
    BulkResultOutput,
    BulkUpdateInput,
    CompanyInput,
    CompanyOutput,
    CompanyStatsOutput,
    ContactBulkUpdateInput,
    ContactInput,
    ContactOutput,
    ContactStatsOutput,
    CustomFieldInput,
    CustomFieldOutput,
    CustomFieldUpdateInput,
    LeadBulkUpdateInput,
    LeadConversionOutput,
    LeadConvertInput,
    LeadDisqualifyInput,
    LeadInput,
    LeadOutput,
    LeadStatsOutput,
    MergeInput,
    RecordTimelineItemOutput,
    TagInput,
    TagOutput,
)

BULK_ERRORS = OpenApiResponse(
    description="`bulk_failed`: nothing changed; `errors` lists `{field, id, code, detail}` per refused item "
    "(`not_found` for ids outside your reach)."
)
DUPLICATE_DOMAIN = OpenApiResponse(
    description="`duplicate_domain`: another company has this domain; `errors` names `domain`."
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

    def merge_duplicate(self, request):
        """The record named by ``duplicate`` in the body, within the caller's reach for ``merge`` (else 404)."""
        data = MergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        duplicate = self.get_queryset().filter(pk=data.validated_data["duplicate"]).first()
        if duplicate is None:
            raise NotFound()
        return duplicate


def _record_schema(tag: str, output, stats_output, bulk_input=BulkUpdateInput):
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


# --- leads ---


@_record_schema("leads", LeadOutput, LeadStatsOutput, LeadBulkUpdateInput)
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
        return selectors.leads()

    def stats_of(self, queryset) -> dict:
        return LeadStatsOutput(selectors.lead_stats(queryset)).data

    def _output(self, lead: Lead) -> Response:
        return Response(LeadOutput(selectors.leads().get(pk=lead.pk)).data)

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
            "contact": {"id": result.contact.pk, "created": result.contact_created},
            "company": {"id": result.company.pk, "created": result.company_created} if result.company else None,
            "deal": {"id": result.deal.pk, "created": True} if result.deal else None,
        }
        return Response(LeadConversionOutput(body).data)


# --- companies ---


@_record_schema("companies", CompanyOutput, CompanyStatsOutput)
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
        duplicate = self.merge_duplicate(request)
        return self._output(services.company_merge(survivor=survivor, duplicate=duplicate, actor=self.access))


# --- contacts ---


@_record_schema("contacts", ContactOutput, ContactStatsOutput, ContactBulkUpdateInput)
class ContactViewSet(RecordViewSet):
    queryset = Contact.objects.all()
    record_type = "contact"
    bulk_update_input = ContactBulkUpdateInput
    action_permissions = {
        "list": "crm.contact.view",
        "retrieve": "crm.contact.view",
        "create": "crm.contact.create",
        "partial_update": "crm.contact.update",
        "destroy": "crm.contact.delete",
        "activate": "crm.contact.update",
        "deactivate": "crm.contact.update",
        "merge": CONTACT_MERGE,
        "bulk_update": "crm.contact.update",
        "bulk_delete": "crm.contact.delete",
        "stats": "crm.contact.view",
        "timeline": "crm.contact.view",
    }
    filterset_class = ContactFilter
    search_fields = ["first_name", "last_name", "email", "phone", "company__name"]
    ordering_fields = ["last_name", "first_name", "email", "status", "created_at", "updated_at"]
    ordering = ["last_name", "first_name", "pk"]

    def prepare_queryset(self, queryset):
        return selectors.contacts()

    def stats_of(self, queryset) -> dict:
        return ContactStatsOutput(selectors.contact_stats(queryset)).data

    def _output(self, contact: Contact, **kwargs) -> Response:
        return Response(ContactOutput(selectors.contacts().get(pk=contact.pk)).data, **kwargs)

    def list(self, request):
        return self.paginated(self.get_queryset(), ContactOutput)

    @extend_schema(responses={200: ContactOutput}, tags=["contacts"])
    def retrieve(self, request, pk=None):
        return Response(ContactOutput(self.get_object()).data)

    @extend_schema(request=ContactInput, responses={201: ContactOutput}, tags=["contacts"])
    def create(self, request):
        data = ContactInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        contact = services.contact_create(actor=self.access, **data.validated_data)
        return self._output(contact, status=status.HTTP_201_CREATED)

    @extend_schema(request=ContactInput(partial=True), responses={200: ContactOutput}, tags=["contacts"])
    def partial_update(self, request, pk=None):
        contact = self.get_object()
        data = ContactInput(data=request.data, partial=True, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        return self._output(services.contact_update(contact=contact, actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None}, tags=["contacts"])
    def destroy(self, request, pk=None):
        services.contact_delete(contact=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: ContactOutput}, tags=["contacts"])
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._output(services.contact_activate(contact=self.get_object(), actor=self.access))

    @extend_schema(request=None, responses={200: ContactOutput}, tags=["contacts"])
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        return self._output(services.contact_deactivate(contact=self.get_object(), actor=self.access))

    @extend_schema(
        request=MergeInput,
        responses={200: ContactOutput},
        tags=["contacts"],
        description="Merge `duplicate` into this contact: its activities, deals and converted leads move here, "
        "blank fields are filled from it, tags are united; then it is deleted.",
    )
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        survivor = self.get_object()
        duplicate = self.merge_duplicate(request)
        return self._output(services.contact_merge(survivor=survivor, duplicate=duplicate, actor=self.access))


# --- activities ---


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


# --- tags and custom fields ---


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
