"""Contacts: CRUD, activation, merge, and the record actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from crm import selectors, services
from crm.models import Contact
from crm.permissions import CONTACT_MERGE

from ..filters import ContactFilter
from ..serializers import ContactBulkUpdateInput, ContactInput, ContactOutput, ContactStatsOutput, MergeInput
from .records import RecordViewSet, record_schema


@record_schema("contacts", ContactOutput, ContactStatsOutput, ContactBulkUpdateInput)
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
        duplicate = self.get_duplicate(request)
        return self._output(services.contact_merge(survivor=survivor, duplicate=duplicate, actor=self.access))
