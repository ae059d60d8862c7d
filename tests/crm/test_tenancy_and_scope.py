"""Every CRM endpoint that takes a record id: another organization's id is 404 and changes nothing; a Sales Rep
(``own`` scope) gets the same 404 for a colleague's record and never sees it in lists."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from crm.models import Activity, Company, Contact, Lead, Tag
from integrations.models import OutboxEvent

pytestmark = pytest.mark.django_db

# (resource, kind, method, suffix, body)
DETAIL_CALLS = [
    ("leads", "lead", "get", "", None),
    ("leads", "lead", "patch", "", {"name": "Hijacked"}),
    ("leads", "lead", "delete", "", None),
    ("leads", "lead", "post", "qualify/", {}),
    ("leads", "lead", "post", "disqualify/", {"reason": "x"}),
    ("leads", "lead", "post", "convert/", {"create_deal": True}),
    ("leads", "lead", "get", "timeline/", None),
    ("contacts", "contact", "get", "", None),
    ("contacts", "contact", "patch", "", {"last_name": "Hijacked"}),
    ("contacts", "contact", "delete", "", None),
    ("contacts", "contact", "post", "activate/", {}),
    ("contacts", "contact", "post", "deactivate/", {}),
    ("contacts", "contact", "post", "merge/", "merge"),
    ("contacts", "contact", "get", "timeline/", None),
    ("companies", "company", "get", "", None),
    ("companies", "company", "patch", "", {"name": "Hijacked"}),
    ("companies", "company", "delete", "", None),
    ("companies", "company", "post", "merge/", "merge"),
    ("companies", "company", "get", "timeline/", None),
    ("activities", "activity", "get", "", None),
    ("activities", "activity", "patch", "", {"subject": "Hijacked"}),
    ("activities", "activity", "delete", "", None),
    ("activities", "activity", "post", "complete/", {}),
]
IDS = [f"{method} {resource}/{{id}}/{suffix}" for resource, _kind, method, suffix, _body in DETAIL_CALLS]
MODELS = {"lead": Lead, "contact": Contact, "company": Company, "activity": Activity}


def _build(make, kind, organization, **fields):
    if kind == "activity":
        contact = make.contact(organization, owner=fields.get("owner"))
        return make.activity(organization, kind="task", contact=contact, **fields)
    return getattr(make, kind)(organization, **fields)


def _state(in_tenant, organization, kind, pk):
    with in_tenant(organization):
        record = MODELS[kind].objects.filter(pk=pk).first()
        return model_to_dict(record) if record else None, OutboxEvent.objects.count()


@pytest.mark.parametrize(("resource", "kind", "method", "suffix", "body"), DETAIL_CALLS, ids=IDS)
def test_another_organizations_record_is_404_and_unchanged(
    as_owner_a, org_a, org_b, make, foreign, in_tenant, resource, kind, method, suffix, body
):
    mine = _build(make, kind, org_a)  # org A has a record of this kind, with another id
    if kind == "activity":
        other = foreign("activity", kind="task", contact=foreign("contact"))
    else:
        other = foreign(kind)
    before = _state(in_tenant, org_b, kind, other.pk)
    if body == "merge":
        body = {"duplicate": mine.pk}
    response = getattr(as_owner_a, method)(f"/api/v1/{resource}/{other.pk}/{suffix}", body, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert _state(in_tenant, org_b, kind, other.pk) == before
    with in_tenant(org_a):
        assert MODELS[kind].objects.filter(pk=mine.pk).exists()


@pytest.mark.parametrize(("resource", "kind", "method", "suffix", "body"), DETAIL_CALLS, ids=IDS)
def test_sales_rep_gets_404_for_a_colleagues_record(
    rep_a, org_a, owner_a, make, in_tenant, resource, kind, method, suffix, body
):
    user, client = rep_a
    mine = _build(make, kind, org_a, owner=user)
    other = _build(make, kind, org_a, owner=owner_a)
    before = _state(in_tenant, org_a, kind, other.pk)
    if body == "merge":
        body = {"duplicate": mine.pk}
    response = getattr(client, method)(f"/api/v1/{resource}/{other.pk}/{suffix}", body, format="json")
    assert response.status_code == 404, response.content
    assert _state(in_tenant, org_a, kind, other.pk)[0] == before[0]


@pytest.mark.parametrize("resource", ["leads", "contacts", "companies", "activities"])
def test_lists_show_only_this_organization_and_the_reps_own_records(
    rep_a, as_owner_a, org_a, owner_a, make, foreign, resource
):
    kind = {"leads": "lead", "contacts": "contact", "companies": "company", "activities": "activity"}[resource]
    user, client = rep_a
    mine = _build(make, kind, org_a, owner=user)
    colleague = _build(make, kind, org_a, owner=owner_a)
    other = foreign("activity", kind="task", contact=foreign("contact")) if kind == "activity" else foreign(kind)
    everyone = {row["id"] for row in as_owner_a.get(f"/api/v1/{resource}/?page_size=100").json()["results"]}
    assert {mine.pk, colleague.pk} <= everyone
    assert other.pk not in everyone
    own = {row["id"] for row in client.get(f"/api/v1/{resource}/?page_size=100").json()["results"]}
    assert own == {mine.pk}


def test_another_organizations_tag_and_custom_field_are_404(as_owner_a, org_a, org_b, in_tenant):
    from crm.models import CustomField

    with in_tenant(org_a):
        mine = Tag.objects.create(name="A tag")
    with in_tenant(org_b):
        Tag.objects.create(name="B tag 1")
        theirs = Tag.objects.create(name="B tag 2")
        field = CustomField.objects.create(record_type="lead", key="b", label="B", type="text")
    assert theirs.pk != mine.pk
    assert as_owner_a.get(f"/api/v1/tags/{theirs.pk}/").status_code == 404
    assert as_owner_a.patch(f"/api/v1/tags/{theirs.pk}/", {"name": "x"}, format="json").status_code == 404
    assert as_owner_a.delete(f"/api/v1/tags/{theirs.pk}/").status_code == 404
    assert as_owner_a.delete(f"/api/v1/custom-fields/{field.pk}/").status_code == 404
    with in_tenant(org_b):
        assert Tag.objects.get(pk=theirs.pk).name == "B tag 2"
        assert CustomField.objects.filter(pk=field.pk).exists()
