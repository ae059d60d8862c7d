"""Every model output of the project (``config.api.outputs.ModelOutput``) gives exactly what DRF's own loop gives,
over the rows an organization has; and the shortcut leaves to DRF what it cannot read as a plain attribute."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from config.api.outputs import ModelOutput
from config.api.references import RecordReference
from crm.models import Lead
from crm.services import lead_convert
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db


def _outputs(cls: type = ModelOutput) -> list[type[ModelOutput]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_outputs(sub)]
    return found


def _drf(serializer: ModelOutput, instance) -> dict:
    return serializers.Serializer.to_representation(serializer, instance)


def test_every_output_reads_as_drf_would(org_a, owner_a, as_owner_a, in_tenant, make):
    company = make.company(org_a, owner=owner_a, domain="acme-outputs.test")
    contact = make.contact(org_a, owner=owner_a, company_id=company.pk, first_name="Ada")
    lead = make.lead(org_a, owner=owner_a, email="ada@acme-outputs.test", estimated_value="1200.50")
    make.activity(org_a, owner=owner_a, kind="task", lead_id=lead.pk)
    with in_tenant(org_a):
        lead_convert(lead=lead, actor=SYSTEM, create_deal=True)
    make.deal(org_a, owner=owner_a, contact_id=contact.pk, company_id=company.pk, amount="99.90")
    assert as_owner_a.post("/api/v1/tags/", {"name": "outputs-vip"}, format="json").status_code == 201
    assert as_owner_a.post("/api/v1/assistant/conversations/", {}, format="json").status_code in (201, 403)

    request = APIRequestFactory().get("/")
    request.user = owner_a
    compared = set()
    with in_tenant(org_a):
        for output in _outputs():
            if not hasattr(output, "Meta"):  # a base of outputs (RecordOutput)
                continue
            model = output.Meta.model
            for instance in model._default_manager.all()[:20]:
                serializer = output(context={"request": request})
                try:
                    expected = _drf(serializer, instance)
                except Exception as error:  # noqa: BLE001 - a field needing more context than a bare request
                    with pytest.raises(type(error)):
                        output(context={"request": request}).to_representation(instance)
                    continue
                assert serializer.to_representation(instance) == expected, (output.__name__, instance.pk)
                assert list(serializer.to_representation(instance)) == list(expected)  # the keys' order too
                compared.add(output.__name__)
        assert connection.schema_name == org_a.schema_name
    assert {
        "LeadOutput",
        "ContactOutput",
        "CompanyOutput",
        "DealOutput",
        "ActivityOutput",
        "TagOutput",
        "MemberOutput",
        "OrganizationOutput",
    } <= compared, compared


class _LeadWithMethod(ModelOutput):
    status_label = serializers.CharField(source="get_status_display")
    converted_contact = RecordReference(allow_null=True)
    owner_email = serializers.EmailField(source="owner.email", allow_null=True)

    class Meta:
        model = Lead
        fields = ["id", "status_label", "converted_contact", "owner_email", "name"]


def test_methods_dotted_sources_and_mappings_go_drfs_way(org_a, owner_a, in_tenant, make):
    lead = make.lead(org_a, owner=owner_a, name="Grace")
    with in_tenant(org_a):
        lead = Lead.objects.select_related("owner").get(pk=lead.pk)
        serializer = _LeadWithMethod()
        plan = {name: attribute for name, attribute, _field in serializer._plan}
        assert plan == {
            "id": "id",
            "status_label": "get_status_display",  # a method: read, found callable, then DRF's way (called)
            "converted_contact": "converted_contact",
            "owner_email": None,  # dotted
            "name": "name",
        }
        assert serializer.to_representation(lead) == {
            "id": lead.pk,
            "status_label": "New",
            "converted_contact": None,
            "owner_email": owner_a.email,
            "name": "Grace",
        }
        mapping = {"id": 7, "get_status_display": "Won", "converted_contact": None, "owner": None, "name": "M"}
        assert serializer.to_representation(mapping) == _drf(serializer, mapping)


def test_the_leads_list_reads_as_each_lead_does(org_a, owner_a, as_owner_a, in_tenant, make):
    """The list page serializes flat rows (``selectors.lead_list`` / ``lead_items``), never model instances: each
    item is what the lead's own output gives (owner, converted records' names, tags, custom fields, nulls)."""
    from crm import selectors
    from crm.api.serializers import LeadOutput

    converted = make.lead(org_a, owner=owner_a, name="Converted Co", email="buyer@converted.test")
    with in_tenant(org_a):
        lead_convert(lead=converted, actor=SYSTEM, create_deal=True)
    nameless = make.contact(org_a, email="nameless@converted.test", last_name="")
    emailed = make.lead(org_a, name="Points at a nameless contact", estimated_value="10.00")
    make.lead(org_a, owner=owner_a, name="Tagged", tags=["outputs-b", "outputs-a"], score=40)
    with in_tenant(org_a):
        Lead.objects.filter(pk=emailed.pk).update(converted_contact_id=nameless.pk)

    listed = as_owner_a.get("/api/v1/leads/?page_size=100&ordering=-created_at")
    assert listed.status_code == 200
    items = {item["id"]: item for item in listed.json()["results"]}
    with in_tenant(org_a):
        for lead in selectors.leads().filter(pk__in=list(items)):
            assert items[lead.pk] == LeadOutput(lead).data, lead.name
    assert items[emailed.pk]["converted_contact"] == {"id": nameless.pk, "name": "nameless@converted.test"}
    assert items[converted.pk]["converted_deal"]["name"]
    assert {item["owner"] is None for item in items.values()} == {True, False}
