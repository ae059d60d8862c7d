"""Tags and custom field definitions: the API, plan gating and limit, validation of values, ``cf_`` filters."""

from __future__ import annotations

import pytest

from billing.models import Feature, Override
from crm.models import Contact, CustomField, Lead, Tag

from ..problems import field_error

pytestmark = pytest.mark.django_db


# --- tags ---


def test_tag_crud(as_owner_a, org_a, make, in_tenant):
    response = as_owner_a.post("/api/v1/tags/", {"name": " VIP ", "color": "#ff0000"}, format="json")
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    assert response.json()["name"] == "VIP"
    response = as_owner_a.post("/api/v1/tags/", {"name": "vip"}, format="json")
    assert response.status_code == 409
    error = field_error(response, status=409)
    assert (error["field"], error["code"]) == ("name", "duplicate_tag")
    contact = make.contact(org_a, tags=["VIP"])
    assert as_owner_a.patch(f"/api/v1/tags/{pk}/", {"name": "Key account"}, format="json").status_code == 200
    assert as_owner_a.get(f"/api/v1/contacts/{contact.pk}/").json()["tags"] == ["Key account"]
    assert [row["name"] for row in as_owner_a.get("/api/v1/tags/?search=key").json()["results"]] == ["Key account"]
    assert as_owner_a.delete(f"/api/v1/tags/{pk}/").status_code == 204
    assert as_owner_a.get(f"/api/v1/contacts/{contact.pk}/").json()["tags"] == []
    with in_tenant(org_a):
        assert not Tag.objects.exists()


def test_members_read_tags_but_only_managers_change_them(rep_a, org_a, make):
    _user, client = rep_a
    make.contact(org_a, tags=["shared"])
    assert [row["name"] for row in client.get("/api/v1/tags/").json()["results"]] == ["shared"]
    response = client.post("/api/v1/tags/", {"name": "mine"}, format="json")
    assert response.status_code == 403
    assert response.json()["permission"] == "crm.tag.manage"


# --- custom fields ---


def test_custom_field_crud(as_owner_a, org_a, make, in_tenant):
    response = as_owner_a.post(
        "/api/v1/custom-fields/",
        {"record_type": "contact", "key": "tier", "label": "Tier", "type": "choice", "choices": ["gold", "silver"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    response = as_owner_a.post(
        "/api/v1/custom-fields/",
        {"record_type": "contact", "key": "tier", "label": "Again", "type": "text"},
        format="json",
    )
    assert response.status_code == 409
    error = field_error(response, status=409)
    assert (error["field"], error["code"]) == ("key", "duplicate_custom_field")
    # The same key on another record type is another field.
    response = as_owner_a.post(
        "/api/v1/custom-fields/", {"record_type": "lead", "key": "tier", "label": "Tier", "type": "text"}, format="json"
    )
    assert response.status_code == 201
    response = as_owner_a.patch(f"/api/v1/custom-fields/{pk}/", {"label": "Account tier", "key": "x"}, format="json")
    assert response.status_code == 200
    assert (response.json()["label"], response.json()["key"]) == ("Account tier", "tier")
    rows = as_owner_a.get("/api/v1/custom-fields/?record_type=contact").json()["results"]
    assert [row["key"] for row in rows] == ["tier"]

    contact = make.contact(org_a, custom_fields_values={"tier": "gold"})
    assert as_owner_a.delete(f"/api/v1/custom-fields/{pk}/").status_code == 204
    with in_tenant(org_a):
        assert Contact.objects.get(pk=contact.pk).custom_fields == {}
        assert not CustomField.objects.filter(pk=pk).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "choice", "choices": []}, "choices"),
        ({"type": "text", "choices": ["a"]}, "choices"),
        ({"type": "choice", "choices": ["a", "a"]}, "choices"),
    ],
)
def test_custom_field_definition_is_validated(as_owner_a, body, field):
    payload = {"record_type": "company", "key": "k", "label": "K", **body}
    response = as_owner_a.post("/api/v1/custom-fields/", payload, format="json")
    assert response.status_code == 400
    assert field_error(response)["code"] == "invalid_custom_field_definition"
    assert response.json()["errors"][0]["field"] == field


def test_custom_field_key_format(as_owner_a):
    payload = {"record_type": "company", "key": "Bad Key", "label": "K", "type": "text"}
    assert as_owner_a.post("/api/v1/custom-fields/", payload, format="json").status_code == 400


def test_custom_fields_need_the_plan_feature(as_owner_a, org_a):
    Override.objects.create(organization=org_a, feature=Feature.objects.get(code="crm.custom_fields"), enabled=False)
    response = as_owner_a.get("/api/v1/custom-fields/")
    assert response.status_code == 403
    assert response.json()["code"] == "feature_not_in_plan"


def test_custom_field_limit_of_the_plan(as_owner_a, org_a, in_tenant):
    Override.objects.create(organization=org_a, limit="custom_fields", limit_value=1)
    first = {"record_type": "lead", "key": "a", "label": "A", "type": "text"}
    assert as_owner_a.post("/api/v1/custom-fields/", first, format="json").status_code == 201
    response = as_owner_a.post("/api/v1/custom-fields/", {**first, "key": "b"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "plan_limit_reached"
    assert response.json()["limit"] == "custom_fields"
    with in_tenant(org_a):
        assert CustomField.objects.count() == 1


def test_only_managers_of_custom_fields_define_them(member, org_a):
    _user, client = member(org_a, "manager")  # managers have every crm permission but this one
    assert client.get("/api/v1/custom-fields/").status_code == 200
    response = client.post(
        "/api/v1/custom-fields/", {"record_type": "lead", "key": "a", "label": "A", "type": "text"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["permission"] == "crm.custom_field.manage"


@pytest.fixture
def fields_a(org_a, in_tenant):
    with in_tenant(org_a):
        CustomField.objects.create(record_type="contact", key="tier", label="Tier", type="choice", choices=["gold"])
        CustomField.objects.create(record_type="contact", key="seats", label="Seats", type="number")
        CustomField.objects.create(record_type="contact", key="vip", label="VIP", type="boolean")
        CustomField.objects.create(record_type="company", key="renewal", label="Renewal", type="date", required=True)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"tier": "platinum"}, "custom_fields.tier"),
        ({"seats": "many"}, "custom_fields.seats"),
        ({"vip": "yes"}, "custom_fields.vip"),
        ({"unknown": 1}, "custom_fields.unknown"),
    ],
)
def test_contact_custom_field_values_are_validated(as_owner_a, fields_a, values, field):
    response = as_owner_a.post("/api/v1/contacts/", {"last_name": "X", "custom_fields": values}, format="json")
    assert response.status_code == 400
    assert field_error(response)["code"] == "invalid_custom_field"
    assert response.json()["errors"][0]["field"] == field


def test_required_custom_field_on_companies(as_owner_a, fields_a):
    response = as_owner_a.post("/api/v1/companies/", {"name": "No renewal"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "custom_fields.renewal"
    response = as_owner_a.post(
        "/api/v1/companies/", {"name": "Renews", "custom_fields": {"renewal": "2027-01-31"}}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["custom_fields"] == {"renewal": "2027-01-31"}


def test_custom_field_values_merge_on_update_and_filter(as_owner_a, org_a, fields_a):
    created = as_owner_a.post(
        "/api/v1/contacts/",
        {"last_name": "Gold", "custom_fields": {"tier": "gold", "seats": "12", "vip": True}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["custom_fields"] == {"tier": "gold", "seats": 12, "vip": True}
    pk = created.json()["id"]
    as_owner_a.post("/api/v1/contacts/", {"last_name": "Plain", "custom_fields": {"seats": 3}}, format="json")
    response = as_owner_a.patch(f"/api/v1/contacts/{pk}/", {"custom_fields": {"seats": 15}}, format="json")
    assert response.json()["custom_fields"] == {"tier": "gold", "seats": 15, "vip": True}

    def names(query: str) -> list[str]:
        response = as_owner_a.get(f"/api/v1/contacts/?{query}")
        assert response.status_code == 200, response.content
        return [row["last_name"] for row in response.json()["results"]]

    assert names("cf_tier=gold") == ["Gold"]
    assert names("cf_seats=3") == ["Plain"]
    assert names("cf_vip=true") == ["Gold"]
    response = as_owner_a.get("/api/v1/contacts/?cf_nope=1")
    assert response.status_code == 400
    assert field_error(response)["code"] == "unknown_filter"


def test_lead_custom_fields_filter_on_the_lead_list(as_owner_a, org_a, make, in_tenant):
    with in_tenant(org_a):
        CustomField.objects.create(record_type="lead", key="region", label="Region", type="text")
    make.lead(org_a, name="Emea", custom_fields_values={"region": "EMEA"})
    make.lead(org_a, name="Apac", custom_fields_values={"region": "APAC"})
    rows = as_owner_a.get("/api/v1/leads/?cf_region=APAC").json()["results"]
    assert [row["name"] for row in rows] == ["Apac"]
    with in_tenant(org_a):
        assert Lead.objects.count() == 2


def test_record_writes_create_tags_only_for_those_who_manage_tags(rep_a, org_a, make, in_tenant, events):
    """A Sales Rep (no ``crm.tag.manage``) attaches existing tags through every write, but a name that matches no
    tag is 400 ``validation_error`` with one ``unknown_tag`` error per name, and nothing is created or changed."""
    user, client = rep_a
    make.contact(org_a, tags=["Existing"])
    lead = make.lead(org_a, owner=user)
    contact = make.contact(org_a, owner=user)

    def refused(response, field, names):
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["code"] == "validation_error"
        assert [(error["field"], error["code"]) for error in body["errors"]] == [(field, "unknown_tag")] * len(names)
        assert all(repr(name) in body["detail"] for name in names)

    refused(client.patch(f"/api/v1/leads/{lead.pk}/", {"tags": ["existing", "New one"]}), "tags", ["New one"])
    refused(
        client.post("/api/v1/contacts/", {"last_name": "X", "tags": ["fresh", "Other"]}), "tags", ["fresh", "Other"]
    )
    refused(client.post("/api/v1/companies/", {"name": "Co", "tags": ["fresh"]}), "tags", ["fresh"])
    refused(
        client.post("/api/v1/contacts/bulk-update/", {"ids": [contact.pk], "add_tags": ["fresh"]}),
        "add_tags",
        ["fresh"],
    )
    refused(client.post("/api/v1/leads/bulk-update/", {"ids": [lead.pk], "tags": ["fresh"]}), "tags", ["fresh"])
    refused(client.post("/api/v1/deals/", {"title": "D", "tags": ["fresh"]}), "tags", ["fresh"])
    with in_tenant(org_a):
        assert list(Tag.objects.values_list("name", flat=True)) == ["Existing"]
        assert not Contact.objects.filter(last_name="X").exists()
        assert not Lead.objects.get(pk=lead.pk).tags.exists()
    assert events(org_a, "lead.updated") == []

    # Existing tags, named in any case, are attached through the same writes.
    assert client.patch(f"/api/v1/leads/{lead.pk}/", {"tags": ["EXISTING"]}).json()["tags"] == ["Existing"]
    bulk = client.post("/api/v1/contacts/bulk-update/", {"ids": [contact.pk], "add_tags": ["existing"]})
    assert bulk.status_code == 200, bulk.content
    with in_tenant(org_a):
        assert [tag.name for tag in Contact.objects.get(pk=contact.pk).tags.all()] == ["Existing"]


def test_those_who_manage_tags_create_them_through_record_writes(as_owner_a, org_a, in_tenant):
    response = as_owner_a.post("/api/v1/contacts/", {"last_name": "X", "tags": ["brand new"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == ["brand new"]
    with in_tenant(org_a):
        assert Tag.objects.filter(name="brand new").exists()
