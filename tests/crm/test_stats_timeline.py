"""Statistics per record type (honouring scope and the list's filters) and the timeline of a record."""

from __future__ import annotations

import pytest

from integrations.models import OutboxEvent

pytestmark = pytest.mark.django_db


def person(user) -> dict:
    return {"id": user.pk, "email": user.email, "name": user.full_name}


@pytest.fixture
def leads(org_a, owner_a, rep_a, make, in_tenant):
    user, _client = rep_a
    built = [
        make.lead(org_a, owner=user, source="website"),
        make.lead(org_a, owner=user, source="website", status="contacted"),
        make.lead(org_a, owner=owner_a, source="referral"),
        make.lead(org_a, owner=owner_a),
    ]
    from crm.models import Lead

    with in_tenant(org_a):
        Lead.objects.filter(pk__in=[built[1].pk, built[2].pk]).update(status="converted")
    return built


def test_lead_stats(as_owner_a, owner_a, rep_a, leads):
    user, _client = rep_a
    body = as_owner_a.get("/api/v1/leads/stats/").json()
    assert body["total"] == 4
    assert body["by_status"] == {"new": 2, "contacted": 0, "qualified": 0, "unqualified": 0, "converted": 2}
    assert body["by_source"]["website"] == 2
    assert body["by_source"]["referral"] == 1
    assert body["by_source"]["none"] == 1  # the lead without a source
    assert "" not in body["by_source"]
    assert sorted((row["owner"]["id"], row["count"]) for row in body["by_owner"]) == sorted(
        [(user.pk, 2), (owner_a.pk, 2)]
    )
    assert body["conversion_rate"] == 0.5


def test_lead_stats_honour_scope_and_filters(as_owner_a, rep_a, leads):
    user, client = rep_a
    body = client.get("/api/v1/leads/stats/").json()
    assert body["total"] == 2
    assert body["by_owner"] == [{"owner": person(user), "count": 2}]
    assert body["conversion_rate"] == 0.5
    body = as_owner_a.get("/api/v1/leads/stats/?source=referral").json()
    assert body["total"] == 1
    assert body["conversion_rate"] == 1.0


def test_stats_of_nothing(as_owner_a):
    body = as_owner_a.get("/api/v1/leads/stats/").json()
    assert body["total"] == 0
    assert body["conversion_rate"] is None


def test_contact_and_company_stats(as_owner_a, org_a, owner_a, rep_a, make):
    user, client = rep_a
    make.contact(org_a, owner=user, source="event")
    make.contact(org_a, owner=owner_a, status="inactive", lifecycle_stage="customer")
    make.company(org_a, owner=user, industry="Food", size="1-10")
    make.company(org_a, owner=owner_a, industry="Food")
    make.company(org_a, owner=owner_a, industry="Tech")

    body = as_owner_a.get("/api/v1/contacts/stats/").json()
    assert body["total"] == 2
    assert body["by_status"] == {"active": 1, "inactive": 1}
    assert body["by_lifecycle_stage"]["customer"] == 1
    assert body["by_source"]["event"] == 1
    assert client.get("/api/v1/contacts/stats/").json()["total"] == 1

    body = as_owner_a.get("/api/v1/companies/stats/").json()
    assert body["total"] == 3
    assert body["by_industry"] == {"Food": 2, "Tech": 1, "none": 0}
    assert body["by_size"] == {"1-10": 1, "11-50": 0, "51-200": 0, "201-1000": 0, "1001+": 0, "none": 2}
    rep_body = client.get("/api/v1/companies/stats/").json()
    assert rep_body["total"] == 1
    assert rep_body["by_owner"] == [{"owner": person(user), "count": 1}]


def test_blank_values_are_counted_under_none_in_every_stats(as_owner_a, org_a, make):
    """Blank values used to be grouped under "" (and only when there were some)."""
    make.lead(org_a, source="")
    make.contact(org_a, source="")
    make.company(org_a, industry="", size="")
    make.company(org_a, industry="Food", size="1-10")

    leads = as_owner_a.get("/api/v1/leads/stats/").json()
    contacts = as_owner_a.get("/api/v1/contacts/stats/").json()
    companies = as_owner_a.get("/api/v1/companies/stats/").json()

    blank_buckets = [leads["by_source"], contacts["by_source"], companies["by_industry"], companies["by_size"]]
    assert [counts["none"] for counts in blank_buckets] == [1, 1, 1, 1]
    groupings = [
        counts for body in (leads, contacts, companies) for counts in body.values() if isinstance(counts, dict)
    ]
    assert len(groupings) == 7
    assert not any("" in counts for counts in groupings)
    # Fields that are never blank have no such key.
    assert "none" not in leads["by_status"]
    assert "none" not in contacts["by_lifecycle_stage"]
    nothing = as_owner_a.get("/api/v1/companies/stats/?search=no-such-company").json()
    assert (nothing["by_industry"], nothing["by_size"]["none"]) == ({"none": 0}, 0)


def test_the_none_key_is_documented(api):
    schemas = api.get("/api/schema/?format=json").json()["components"]["schemas"]
    for component, field in [
        ("LeadStatsOutput", "by_source"),
        ("ContactStatsOutput", "by_source"),
        ("CompanyStatsOutput", "by_industry"),
        ("CompanyStatsOutput", "by_size"),
    ]:
        assert '`"none"` counts' in schemas[component]["properties"][field]["description"]


# --- timeline ---


def test_contact_timeline_has_activities_and_events_newest_first(as_owner_a, org_a, make, in_tenant):
    contact = make.contact(org_a, last_name="Timeline")
    note = make.activity(org_a, contact=contact, subject="A note")
    as_owner_a.patch(f"/api/v1/contacts/{contact.pk}/", {"job_title": "CTO"}, format="json")
    other_contact = make.contact(org_a)
    make.activity(org_a, contact=other_contact, subject="Not this one")

    response = as_owner_a.get(f"/api/v1/contacts/{contact.pk}/timeline/")
    assert response.status_code == 200, response.content
    body = response.json()
    kinds = [(item["type"], item["data"].get("event") or item["data"].get("subject")) for item in body["results"]]
    assert kinds == [("event", "contact.updated"), ("activity", "A note"), ("event", "contact.created")]
    assert body["count"] == 3
    assert body["results"][1]["data"]["id"] == note.pk
    stamps = [item["at"] for item in body["results"]]
    assert stamps == sorted(stamps, reverse=True)


def test_timeline_is_paginated(as_owner_a, org_a, make):
    lead = make.lead(org_a)
    for index in range(5):
        make.activity(org_a, lead=lead, subject=f"Step {index}")
    first = as_owner_a.get(f"/api/v1/leads/{lead.pk}/timeline/?page_size=4").json()
    assert first["count"] == 6  # five activities and lead.created
    assert len(first["results"]) == 4
    second = as_owner_a.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert second["results"][-1]["data"]["event"] == "lead.created"


def test_company_timeline_shows_merge_event(as_owner_a, org_a, make):
    survivor, duplicate = make.company(org_a), make.company(org_a)
    as_owner_a.post(f"/api/v1/companies/{survivor.pk}/merge/", {"duplicate": duplicate.pk}, format="json")
    body = as_owner_a.get(f"/api/v1/companies/{survivor.pk}/timeline/").json()
    assert body["results"][0]["data"]["event"] == "company.merged"


def test_timeline_shows_only_activities_the_caller_may_see(rep_a, org_a, owner_a, make):
    user, client = rep_a
    contact = make.contact(org_a, owner=user)
    mine = make.activity(org_a, contact=contact, owner=user)
    make.activity(org_a, contact=contact, owner=owner_a, subject="The boss's note")
    body = client.get(f"/api/v1/contacts/{contact.pk}/timeline/").json()
    activities = [item["data"]["id"] for item in body["results"] if item["type"] == "activity"]
    assert activities == [mine.pk]


def test_timeline_of_someone_elses_or_a_foreign_record_is_404(rep_a, as_owner_a, org_a, owner_a, make, foreign):
    _user, client = rep_a
    other = make.lead(org_a, owner=owner_a)
    assert client.get(f"/api/v1/leads/{other.pk}/timeline/").status_code == 404
    foreign_lead = foreign("lead")
    assert as_owner_a.get(f"/api/v1/leads/{foreign_lead.pk}/timeline/").status_code == 404


def test_timeline_does_not_show_events_of_another_record_type_with_the_same_id(as_owner_a, org_a, make, in_tenant):
    contact = make.contact(org_a)
    with in_tenant(org_a):
        OutboxEvent.objects.create(type="company.updated", subject_type="company", subject_id=str(contact.pk))
    body = as_owner_a.get(f"/api/v1/contacts/{contact.pk}/timeline/").json()
    assert {item["data"]["event"] for item in body["results"]} == {"contact.created"}
