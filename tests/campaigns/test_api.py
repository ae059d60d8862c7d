"""The campaigns API: scope (a member targets only contacts within his reach), bad input (template errors with
their position, unknown variables, filters that are not the contacts list's), 409s of the lifecycle, the plan's
monthly limit, previews, test sends, statistics."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from billing.models import Override
from crm.campaigns import services
from crm.campaigns.choices import Channel
from crm.campaigns.models import Campaign, Delivery
from rbac.models import Role
from rbac.services import membership_create

from ..conftest import client_for
from ..factories import SYSTEM, make_user
from .conftest import make_contacts, send_all

pytestmark = pytest.mark.django_db

REP_GRANTS = {
    "crm.contact.view": "own",
    "crm.contact.update": "own",
    "crm.contact.create": "all",
    "crm.campaign.view": "all",
    "crm.campaign.manage": "all",
}


@pytest.fixture
def rep(org_a):
    """A Sales Rep who may run campaigns: contacts in ``own`` scope."""
    role = Role.objects.create(organization=org_a, key="rep_campaigns", name="Rep with campaigns", grants=REP_GRANTS)
    user = make_user()
    membership_create(user=user, organization=org_a, role=role)
    return user, client_for(user, org_a)


@pytest.fixture
def contacts(org_a, rep, owner_a):
    user, _client = rep
    with tenant_context(org_a):
        mine = make_contacts(2, prefix="mine", owner=user.pk)
        theirs = make_contacts(2, prefix="theirs", owner=owner_a.pk)
    return mine, theirs


def _post(client, url, body=None):
    return client.post(url, body or {}, format="json")


def test_a_rep_cannot_put_contacts_outside_his_reach_in_a_static_list(rep, contacts):
    _user, client = rep
    mine, theirs = contacts
    response = _post(
        client, "/api/v1/segments/", {"name": "L", "kind": "static", "contacts": [mine[0].pk, theirs[0].pk]}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bulk_failed"
    assert body["errors"] == [
        {"field": "contacts", "id": theirs[0].pk, "code": "not_found", "detail": "No such contact."}
    ]

    segment = _post(client, "/api/v1/segments/", {"name": "L", "kind": "static", "contacts": [mine[0].pk]}).json()
    added = _post(client, f"/api/v1/segments/{segment['id']}/add-contacts/", {"ids": [theirs[1].pk]})
    assert added.status_code == 400
    assert added.json()["errors"][0]["id"] == theirs[1].pk


def test_a_rep_targets_only_his_contacts_through_a_dynamic_segment(
    org_a, rep, contacts, campaign_settings, smtp, as_owner_a
):
    _user, client = rep
    mine, theirs = contacts
    segment = _post(client, "/api/v1/segments/", {"name": "All", "kind": "dynamic", "filters": {"has_email": "true"}})
    assert segment.status_code == 201, segment.content
    segment = segment.json()

    count = client.get(f"/api/v1/segments/{segment['id']}/count/").json()
    preview = client.get(f"/api/v1/segments/{segment['id']}/contacts/").json()
    assert count == {"count": 2}
    assert sorted(row["id"] for row in preview["results"]) == sorted(c.pk for c in mine)
    assert as_owner_a.get(f"/api/v1/segments/{segment['id']}/count/").json() == {"count": 4}  # the owner sees all

    campaign = _post(
        client,
        "/api/v1/campaigns/",
        {
            "name": "C",
            "channel": "email",
            "segment": segment["id"],
            "subject": "Hi",
            "body": "Hello {{ contact.first_name }}",
        },
    ).json()
    scheduled = _post(client, f"/api/v1/campaigns/{campaign['id']}/schedule/")
    assert scheduled.status_code == 200, scheduled.content
    with tenant_context(org_a):
        send_all(Campaign.objects.get(pk=campaign["id"]))
        assert Delivery.objects.filter(campaign_id=campaign["id"]).count() == 2
    assert sorted(smtp.recipients()) == sorted(c.email for c in mine)


def test_a_static_list_built_by_the_owner_is_sent_within_the_reps_reach_when_he_schedules_it(
    org_a, rep, contacts, campaign_settings, smtp, as_owner_a
):
    _user, client = rep
    mine, theirs = contacts
    segment = _post(
        as_owner_a, "/api/v1/segments/", {"name": "L", "kind": "static", "contacts": [c.pk for c in mine + theirs]}
    ).json()
    campaign = _post(
        client,
        "/api/v1/campaigns/",
        {"name": "C", "channel": "email", "segment": segment["id"], "subject": "Hi", "body": "Hello"},
    ).json()
    assert _post(client, f"/api/v1/campaigns/{campaign['id']}/schedule/").json()["recipients"] == 2
    with tenant_context(org_a):
        send_all(Campaign.objects.get(pk=campaign["id"]))
    assert sorted(smtp.recipients()) == sorted(c.email for c in mine)


def test_segments_and_campaigns_refer_to_people_and_records_as_everywhere(org_a, owner_a, as_owner_a):
    """Who created or scheduled is a person ``{id, email, name}``, the segment a record ``{id, name}``; a list
    loads its people in one query whatever its length."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    owner = {"id": owner_a.pk, "email": owner_a.email, "name": owner_a.full_name}
    segments = [_post(as_owner_a, "/api/v1/segments/", {"name": f"S{n}", "kind": "static"}).json() for n in range(3)]
    assert segments[0]["created_by"] == owner
    campaign = _post(
        as_owner_a,
        "/api/v1/campaigns/",
        {"name": "C", "channel": "email", "segment": segments[0]["id"], "subject": "Hi", "body": "Hello"},
    ).json()
    assert (campaign["segment"], campaign["created_by"], campaign["scheduled_by"]) == (
        {"id": segments[0]["id"], "name": "S0"},
        owner,
        None,
    )
    as_owner_a.get("/api/v1/segments/")  # warm the authorization cache
    counts = []
    for size in (1, 3):
        with CaptureQueriesContext(connection) as captured:
            listed = as_owner_a.get(f"/api/v1/segments/?page_size={size}").json()["results"]
        assert [row["created_by"] for row in listed] == [owner] * size
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_dynamic_segment_filters_are_the_contacts_lists_and_checked_when_saved(as_owner_a):
    unknown = _post(
        as_owner_a,
        "/api/v1/segments/",
        {"name": "S", "kind": "dynamic", "filters": {"nonsense": "1", "status": "active"}},
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == [
        {"field": "filters.nonsense", "code": "unknown_filter", "detail": "Not a contacts list filter."}
    ]
    invalid = _post(as_owner_a, "/api/v1/segments/", {"name": "S", "kind": "dynamic", "filters": {"status": "zombie"}})
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["field"] == "filters.status"
    ok = _post(
        as_owner_a,
        "/api/v1/segments/",
        {"name": "S", "kind": "dynamic", "filters": {"status": ["active"], "created_after": "2020-01-01"}},
    )
    assert ok.status_code == 201, ok.content


def _segment(client, org, n=2):
    with tenant_context(org):
        people = make_contacts(n)
    return _post(
        client, "/api/v1/segments/", {"name": "L", "kind": "static", "contacts": [c.pk for c in people]}
    ).json()


def test_template_syntax_errors_give_the_position_and_unknown_variables_are_named(as_owner_a, org_a):
    segment = _segment(as_owner_a, org_a)
    base = {"name": "C", "channel": "email", "segment": segment["id"], "subject": "Hi"}

    broken = _post(as_owner_a, "/api/v1/campaigns/", {**base, "body": "Hello\n  {{ contact.first_name "})
    assert broken.status_code == 400
    error = broken.json()["errors"][0]
    assert (error["field"], error["code"], error["line"], error["column"]) == ("body", "template_syntax_error", 2, 3)

    tag = _post(as_owner_a, "/api/v1/campaigns/", {**base, "body": "{% if x %}"})
    assert tag.json()["errors"][0]["code"] == "template_syntax_error"

    unknown = _post(
        as_owner_a, "/api/v1/campaigns/", {**base, "subject": "{{ contact.password }} {{ user.email }}", "body": "ok"}
    )
    assert unknown.status_code == 400
    error = unknown.json()["errors"][0]
    assert (error["field"], error["code"]) == ("subject", "unknown_variable")
    assert error["variables"] == ["contact.password", "user.email"]

    walking = _post(as_owner_a, "/api/v1/campaigns/", {**base, "body": "{{ contact.company.owner.email }}"})
    assert walking.json()["errors"][0]["code"] == "unknown_variable"


def test_the_lifecycle_answers_409_with_codes(as_owner_a, org_a, campaign_settings, smtp):
    empty = _post(as_owner_a, "/api/v1/segments/", {"name": "Empty", "kind": "static"}).json()
    campaign = _post(
        as_owner_a,
        "/api/v1/campaigns/",
        {"name": "C", "channel": "email", "segment": empty["id"], "subject": "Hi", "body": "Hello"},
    ).json()
    response = _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/schedule/")
    assert (response.status_code, response.json()["code"]) == (409, "empty_segment")

    segment = _segment(as_owner_a, org_a)
    assert as_owner_a.patch(f"/api/v1/campaigns/{campaign['id']}/", {"segment": segment["id"]}).status_code == 200
    assert _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/schedule/").status_code == 200
    with tenant_context(org_a):
        services.campaign_start(campaign_id=campaign["id"])  # sending now
    edit = as_owner_a.patch(f"/api/v1/campaigns/{campaign['id']}/", {"body": "Changed"}, format="json")
    assert (edit.status_code, edit.json()["code"]) == (409, "campaign_not_editable")
    assert _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/resume/").json()["code"] == (
        "invalid_campaign_transition"
    )
    assert _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/pause/").json()["status"] == "paused"
    assert _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/resume/").json()["status"] == "sending"
    with tenant_context(org_a):
        from crm.campaigns import sending

        sending.run(campaign_id=campaign["id"], slice_seconds=30)
    assert as_owner_a.get(f"/api/v1/campaigns/{campaign['id']}/").json()["status"] == "completed"
    again = _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/schedule/")
    assert (again.status_code, again.json()["code"]) == (409, "campaign_finished")
    in_use = as_owner_a.delete(f"/api/v1/segments/{segment['id']}/")
    assert (in_use.status_code, in_use.json()["code"]) == (409, "segment_in_use")

    stats = as_owner_a.get(f"/api/v1/campaigns/{campaign['id']}/stats/").json()
    assert (stats["recipients"], stats["sent"], stats["skipped"]) == (2, 2, 0)
    assert sum(bucket["sent"] for bucket in stats["by_time"]) == 2
    deliveries = as_owner_a.get("/api/v1/campaign-deliveries/", {"campaign": campaign["id"]}).json()
    assert deliveries["count"] == 2
    assert {row["status"] for row in deliveries["results"]} == {"sent"}


def test_cancel_skips_what_is_queued(as_owner_a, org_a, campaign_settings):
    segment = _segment(as_owner_a, org_a)
    campaign = _post(
        as_owner_a,
        "/api/v1/campaigns/",
        {"name": "C", "channel": "email", "segment": segment["id"], "subject": "Hi", "body": "Hello"},
    ).json()
    _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/schedule/", {"scheduled_at": "2099-01-01T09:00:00"})
    with tenant_context(org_a):
        assert services.campaign_start(campaign_id=campaign["id"]) is None  # not due
    assert _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/cancel/").json()["status"] == "canceled"
    assert _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/cancel/").json()["code"] == "campaign_finished"


def test_past_the_monthly_limit_scheduling_is_403_plan_limit_reached(as_owner_a, org_a, campaign_settings):
    Override.objects.create(organization=org_a, limit="campaign_messages_per_month", limit_value=1)
    from config.decision_cache import invalidate_decisions

    invalidate_decisions(organization_id=org_a.pk)
    segment = _segment(as_owner_a, org_a, n=2)
    campaign = _post(
        as_owner_a,
        "/api/v1/campaigns/",
        {"name": "C", "channel": "email", "segment": segment["id"], "subject": "Hi", "body": "Hello"},
    ).json()
    response = _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/schedule/")
    assert response.status_code == 403
    body = response.json()
    assert (body["code"], body["limit"], body["value"]) == ("plan_limit_reached", "campaign_messages_per_month", 1)
    usage = {row["limit"]: row for row in as_owner_a.get("/api/v1/billing/usage/").json()["results"]}
    assert usage["campaign_messages_per_month"]["used"] == 0


def test_an_unconfigured_channel_is_409_channel_not_configured(as_owner_a, org_a, settings):
    settings.TWILIO_ACCOUNT_SID = ""
    segment = _segment(as_owner_a, org_a)
    campaign = _post(
        as_owner_a, "/api/v1/campaigns/", {"name": "C", "channel": "sms", "segment": segment["id"], "body": "Hello"}
    ).json()
    response = _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/schedule/")
    assert (response.status_code, response.json()["code"]) == (409, "channel_not_configured")


def test_preview_for_a_contact_and_a_test_send_to_oneself(as_owner_a, org_a, owner_a, campaign_settings, smtp):
    segment = _segment(as_owner_a, org_a, n=1)
    with tenant_context(org_a):
        contact_id = Campaign.objects.none() or services.selectors.contacts_within(SYSTEM).order_by("-pk").first().pk
    campaign = _post(
        as_owner_a,
        "/api/v1/campaigns/",
        {
            "name": "C",
            "channel": "email",
            "segment": segment["id"],
            "subject": "Hi {{ contact.first_name|upper }}",
            "body": '{{ contact.job_title|default:"friend" }} at {{ organization.name }}',
        },
    ).json()

    preview = _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/preview/", {"contact": contact_id})
    assert preview.status_code == 200, preview.content
    assert preview.json() == {"subject": "Hi R0", "body": "friend at Org A"}
    sample = _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/preview/").json()
    assert sample["subject"] == "Hi ADA"

    sent = _post(as_owner_a, f"/api/v1/campaigns/{campaign['id']}/test-send/", {"contact": contact_id})
    assert sent.status_code == 200, sent.content
    assert smtp.recipients() == [owner_a.email]
    assert smtp.accepted[0].message["Subject"] == "[Test] Hi R0"


def test_consent_is_recorded_and_listed_within_reach(rep, contacts, as_owner_a):
    _user, client = rep
    mine, theirs = contacts
    recorded = _post(
        client,
        "/api/v1/consents/",
        {"contact": mine[0].pk, "channel": "sms", "status": "opted_in", "source": "form", "proof": "signed form 42"},
    )
    assert recorded.status_code == 201, recorded.content
    foreign = _post(client, "/api/v1/consents/", {"contact": theirs[0].pk, "channel": "sms", "status": "opted_in"})
    assert foreign.status_code == 400
    assert foreign.json()["errors"][0]["code"] == "does_not_exist"
    listed = client.get("/api/v1/consents/", {"channel": "email"}).json()
    assert {row["contact"] for row in listed["results"]} == {c.pk for c in mine}
    states = as_owner_a.get("/api/v1/consent-states/", {"channel": Channel.SMS}).json()
    assert [row["contact"] for row in states["results"]] == [mine[0].pk]


def test_a_send_window_takes_wall_clock_times_and_reads_them_back_the_same_way(as_owner_a, org_a, campaign_settings):
    with tenant_context(org_a):
        make_contacts(1)
    segment = _post(as_owner_a, "/api/v1/segments/", {"name": "All", "kind": "dynamic", "filters": {}}).json()
    campaign = _post(
        as_owner_a,
        "/api/v1/campaigns/",
        {"name": "W", "channel": "email", "segment": segment["id"], "subject": "Hi", "body": "Hello"},
    ).json()
    url = f"/api/v1/campaigns/{campaign['id']}/schedule/"

    for offset in ("17:00Z", "17:00+02:00", "17:00:00.5"):  # a window is local time: no zone, no fractions
        refused = _post(as_owner_a, url, {"send_window": {"start": "09:00", "end": offset}})
        assert refused.status_code == 400, offset
        assert refused.json()["errors"][0]["field"] == "send_window.end"

    scheduled = _post(as_owner_a, url, {"send_window": {"days": [0, 4], "start": "09:00", "end": "17:30"}})
    assert scheduled.status_code == 200, scheduled.content
    assert scheduled.json()["send_window"] == {"days": [0, 4], "start": "09:00:00", "end": "17:30:00"}
