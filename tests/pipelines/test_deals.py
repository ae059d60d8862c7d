"""Deals: create, edit, filters, search, ordering, and the stage transitions with their history and events."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Override
from config.decision_cache import invalidate_decisions
from crm.models import Company, Contact, CustomField
from integrations.models import OutboxEvent
from pipelines.models import Deal, StageChange

from ..problems import field_error

pytestmark = pytest.mark.django_db


def _events(org, deal, in_tenant) -> list[str]:
    with in_tenant(org):
        return list(
            OutboxEvent.objects.filter(subject_type="deal", subject_id=str(deal.pk))
            .order_by("occurred_at")
            .values_list("type", flat=True)
        )


def _history(org, deal, in_tenant) -> list[tuple]:
    with in_tenant(org):
        return list(
            StageChange.objects.filter(deal_id=deal.pk)
            .order_by("changed_at", "pk")
            .values_list("from_stage_name", "to_stage_name")
        )


def test_create_with_every_field(as_owner_a, pipeline_a, stages_a, org_a, owner_a, member, in_tenant):
    rep, _client = member(org_a, "sales_rep")
    with in_tenant(org_a):
        company = Company.objects.create(name="Acme")
        contact = Contact.objects.create(first_name="Ada", last_name="Lovelace", company=company)
        CustomField.objects.create(record_type="deal", key="tier", label="Tier", type="choice", choices=["a", "b"])
    response = as_owner_a.post(
        "/api/v1/deals/",
        {
            "title": " Acme renewal ",
            "amount": "1200.50",
            "stage": stages_a["Proposal"].pk,
            "contact": contact.pk,
            "company": company.pk,
            "expected_close_date": "2026-05-31",
            "owner": rep.pk,
            "tags": ["Hot", "renewal"],
            "custom_fields": {"tier": "a"},
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["title"] == "Acme renewal"
    assert (body["amount"], body["currency"], body["pipeline"]["id"]) == ("1200.50", "USD", pipeline_a.pk)
    assert (body["stage"]["name"], body["status"]) == ("Proposal", "open")
    assert (body["contact"], body["company"]) == (
        {"id": contact.pk, "name": "Ada Lovelace"},
        {"id": company.pk, "name": "Acme"},
    )
    assert (body["owner"]["id"], body["tags"], body["custom_fields"]) == (rep.pk, ["Hot", "renewal"], {"tier": "a"})
    deal = Deal(pk=body["id"])
    assert _history(org_a, deal, in_tenant) == [("", "Proposal")]
    with in_tenant(org_a):
        created = OutboxEvent.objects.get(subject_type="deal", subject_id=str(deal.pk))
    assert (created.type, created.actor_id, created.payload["amount"]) == ("deal.created", owner_a.pk, "1200.50")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x", "amount": "-1"}, "amount"),
        ({"title": "x", "owner": 987654}, "owner"),
        ({"title": "x", "contact": 987654}, "contact"),
        ({"title": "x", "custom_fields": {"nope": 1}}, "custom_fields.nope"),
    ],
)
def test_create_validation(as_owner_a, pipeline_a, payload, field):
    response = as_owner_a.post("/api/v1/deals/", payload)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_create_in_a_closed_or_foreign_stage_is_refused(as_owner_a, pipeline_a, stages_a):
    response = as_owner_a.post("/api/v1/deals/", {"title": "x", "stage": stages_a["Won"].pk})
    assert field_error(response)["code"] == "stage_not_open"
    other = as_owner_a.post("/api/v1/pipelines/", {"name": "Partners"}).json()
    response = as_owner_a.post(
        "/api/v1/deals/", {"title": "x", "pipeline": other["id"], "stage": stages_a["Qualification"].pk}
    )
    assert field_error(response)["code"] == "stage_not_in_pipeline"


def test_update_records_the_changes_and_refuses_stage_edits(as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    deal = make_deal(org_a, owner=owner_a, amount="10")
    response = as_owner_a.patch(f"/api/v1/deals/{deal.pk}/", {"amount": "25.00", "tags": ["vip"]})
    assert response.status_code == 200
    assert (response.json()["amount"], response.json()["tags"]) == ("25.00", ["vip"])
    with in_tenant(org_a):
        updated = OutboxEvent.objects.get(type="deal.updated", subject_id=str(deal.pk))
    assert updated.payload["changes"] == {"amount": ["10.00", "25.00"], "tags": ["vip"]}  # the new list, as catalogued

    response = as_owner_a.patch(f"/api/v1/deals/{deal.pk}/", {"stage": stages_a["Won"].pk})
    assert (response.status_code, response.json()["errors"][0]["field"]) == (400, "stage")
    # Nothing changed: no second event.
    as_owner_a.patch(f"/api/v1/deals/{deal.pk}/", {"amount": "25.00"})
    assert _events(org_a, deal, in_tenant).count("deal.updated") == 1


def test_delete_records_an_event(as_owner_a, org_a, owner_a, make_deal, in_tenant, pipeline_a):
    deal = make_deal(org_a, owner=owner_a)
    assert as_owner_a.delete(f"/api/v1/deals/{deal.pk}/").status_code == 204
    assert _events(org_a, deal, in_tenant) == ["deal.created", "deal.deleted"]
    with in_tenant(org_a):
        assert not Deal.objects.filter(pk=deal.pk).exists()


def test_move_win_reopen_lose_reopen(as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    deal = make_deal(org_a, owner=owner_a)
    url = f"/api/v1/deals/{deal.pk}"

    body = as_owner_a.post(f"{url}/move-stage/", {"stage": stages_a["Proposal"].pk}).json()
    assert (body["stage"]["name"], body["status"]) == ("Proposal", "open")
    body = as_owner_a.post(f"{url}/mark-won/").json()
    assert (body["stage"]["name"], body["status"]) == ("Won", "won")
    assert body["won_at"] is not None
    response = as_owner_a.post(f"{url}/mark-lost/", {"reason": "x"})
    assert (response.status_code, response.json()["code"]) == (409, "deal_already_closed")

    body = as_owner_a.post(f"{url}/reopen/").json()  # back to the last open stage it was in
    assert (body["stage"]["name"], body["status"], body["won_at"]) == ("Proposal", "open", None)
    response = as_owner_a.post(f"{url}/reopen/")
    assert (response.status_code, response.json()["code"]) == (409, "deal_not_closed")

    response = as_owner_a.post(f"{url}/mark-lost/", {})
    assert (response.status_code, response.json()["errors"][0]["field"]) == (400, "reason")
    body = as_owner_a.post(f"{url}/mark-lost/", {"reason": "Budget cut"}).json()
    assert (body["stage"]["name"], body["status"], body["lost_reason"]) == ("Lost", "lost", "Budget cut")
    body = as_owner_a.post(f"{url}/reopen/", {"stage": stages_a["Negotiation"].pk}).json()
    assert (body["stage"]["name"], body["status"], body["lost_reason"], body["lost_at"]) == (
        "Negotiation",
        "open",
        "",
        None,
    )

    assert _history(org_a, deal, in_tenant) == [
        ("", "Qualification"),
        ("Qualification", "Proposal"),
        ("Proposal", "Won"),
        ("Won", "Proposal"),
        ("Proposal", "Lost"),
        ("Lost", "Negotiation"),
    ]
    assert _events(org_a, deal, in_tenant) == [
        "deal.created",
        "deal.stage_changed",
        "deal.stage_changed",
        "deal.won",
        "deal.stage_changed",
        "deal.reopened",
        "deal.stage_changed",
        "deal.lost",
        "deal.stage_changed",
        "deal.reopened",
    ]
    with in_tenant(org_a):
        changes = list(StageChange.objects.filter(deal_id=deal.pk).order_by("changed_at", "pk"))
        assert changes[0].time_in_previous_stage is None
        assert all(c.time_in_previous_stage >= timedelta(0) for c in changes[1:])
        assert all(c.changed_by_id == owner_a.pk for c in changes[1:])
        # Each move starts where the previous one ended.
        assert all(a.to_stage_id == b.from_stage_id for a, b in zip(changes, changes[1:], strict=False))


def test_reopen_without_open_history_goes_to_the_first_open_stage(
    as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant
):
    deal = make_deal(org_a, owner=owner_a)
    as_owner_a.post(f"/api/v1/deals/{deal.pk}/mark-won/")
    with in_tenant(org_a):
        StageChange.objects.filter(deal_id=deal.pk).delete()
    body = as_owner_a.post(f"/api/v1/deals/{deal.pk}/reopen/").json()
    assert body["stage"]["name"] == "Qualification"
    response = as_owner_a.post(f"/api/v1/deals/{deal.pk}/mark-won/")
    response = as_owner_a.post(f"/api/v1/deals/{deal.pk}/reopen/", {"stage": stages_a["Lost"].pk})
    assert field_error(response)["code"] == "stage_not_open"


def test_moving_into_won_or_lost_closes_the_deal(as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    deal = make_deal(org_a, owner=owner_a)
    url = f"/api/v1/deals/{deal.pk}/move-stage/"
    response = as_owner_a.post(url, {"stage": stages_a["Lost"].pk})
    assert (response.status_code, response.json()["errors"][0]["field"]) == (400, "reason")
    body = as_owner_a.post(url, {"stage": stages_a["Lost"].pk, "reason": "Went dark"}).json()
    assert (body["status"], body["lost_reason"]) == ("lost", "Went dark")
    other = make_deal(org_a, owner=owner_a)
    body = as_owner_a.post(f"/api/v1/deals/{other.pk}/move-stage/", {"stage": stages_a["Won"].pk}).json()
    assert (body["status"], body["won_at"] is not None) == ("won", True)
    assert _events(org_a, deal, in_tenant)[1:] == ["deal.stage_changed", "deal.lost"]
    assert _events(org_a, other, in_tenant)[1:] == ["deal.stage_changed", "deal.won"]


@pytest.mark.parametrize(("close", "target"), [("mark-won/", "Needs analysis"), ("mark-lost/", "Won")])
def test_a_closed_deal_moves_only_after_an_explicit_reopen(
    as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant, close, target
):
    """Moving a won or lost deal used to reopen it silently (and /reopen/ then answered deal_not_closed)."""
    deal = make_deal(org_a, owner=owner_a)
    url = f"/api/v1/deals/{deal.pk}"
    closed = as_owner_a.post(f"{url}/{close}", {"reason": "No budget"}).json()
    history = _history(org_a, deal, in_tenant)

    response = as_owner_a.post(f"{url}/move-stage/", {"stage": stages_a[target].pk})

    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "deal_closed"
    assert f"/api/v1/deals/{deal.pk}/reopen/" in response.json()["detail"]
    after = as_owner_a.get(f"{url}/").json()
    assert (after["status"], after["stage"]["id"]) == (closed["status"], closed["stage"]["id"])
    assert _history(org_a, deal, in_tenant) == history
    assert "deal.reopened" not in _events(org_a, deal, in_tenant)
    # Moving it to the stage it is in stays a no-op.
    assert as_owner_a.post(f"{url}/move-stage/", {"stage": closed["stage"]["id"]}).status_code == 200

    assert as_owner_a.post(f"{url}/reopen/").json()["status"] == "open"
    body = as_owner_a.post(f"{url}/move-stage/", {"stage": stages_a[target].pk, "reason": "Again"}).json()
    assert body["stage"]["name"] == target
    assert _events(org_a, deal, in_tenant).count("deal.reopened") == 1


def test_move_stage_documents_the_closed_deal_rule(api):
    operation = api.get("/api/schema/?format=json").json()["paths"]["/api/v1/deals/{id}/move-stage/"]["post"]
    assert "deal_closed" in operation["description"]
    assert "reopen" in operation["description"]
    assert "deal_closed" in operation["responses"]["409"]["description"]


def test_moving_to_the_current_stage_changes_nothing(as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    deal = make_deal(org_a, owner=owner_a)
    response = as_owner_a.post(f"/api/v1/deals/{deal.pk}/move-stage/", {"stage": stages_a["Qualification"].pk})
    assert response.status_code == 200
    assert _history(org_a, deal, in_tenant) == [("", "Qualification")]


def test_stage_of_another_pipeline_is_refused(as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    deal = make_deal(org_a, owner=owner_a)
    other = as_owner_a.post("/api/v1/pipelines/", {"name": "Partners"}).json()
    response = as_owner_a.post(f"/api/v1/deals/{deal.pk}/move-stage/", {"stage": other["stages"][1]["id"]})
    assert field_error(response)["code"] == "stage_not_in_pipeline"
    with in_tenant(org_a):
        assert Deal.objects.get(pk=deal.pk).stage_id == stages_a["Qualification"].pk


def test_moving_into_won_needs_the_close_permission(org_a, stages_a, owner_a, make_deal, in_tenant):
    from rbac.models import Role
    from rbac.services import membership_create

    from ..conftest import client_for
    from ..factories import make_user

    mover = Role.objects.create(
        organization=org_a,
        key="mover",
        name="Mover",
        grants={"pipelines.deal.view": "all", "pipelines.deal.move_stage": "all"},
    )
    user = make_user()
    membership_create(user=user, organization=org_a, role=mover)
    client = client_for(user, org_a)
    deal = make_deal(org_a, owner=owner_a)
    url = f"/api/v1/deals/{deal.pk}/move-stage/"
    assert client.post(url, {"stage": stages_a["Proposal"].pk}).status_code == 200
    response = client.post(url, {"stage": stages_a["Won"].pk})
    assert (response.status_code, response.json()["permission"]) == (403, "pipelines.deal.close")
    with in_tenant(org_a):
        assert Deal.objects.get(pk=deal.pk).status == "open"


def test_filters_search_and_ordering(as_owner_a, stages_a, org_a, owner_a, member, make_deal, in_tenant):
    rep, _client = member(org_a, "sales_rep")
    with in_tenant(org_a):
        acme = Company.objects.create(name="Acme Corp")
        ada = Contact.objects.create(first_name="Ada", last_name="Byron")
        CustomField.objects.create(record_type="deal", key="tier", label="Tier", type="text")
    a = make_deal(org_a, owner=owner_a, amount="100", title="Alpha", company=acme, expected_close_date="2026-01-15")
    b = make_deal(org_a, owner=rep, amount="500", title="Beta", contact=ada, stage=stages_a["Proposal"], tags=["hot"])
    c = make_deal(org_a, owner=owner_a, amount="900", title="Gamma", expected_close_date="2026-03-01")
    with in_tenant(org_a):
        Deal.objects.filter(pk=c.pk).update(custom_fields={"tier": "gold"})
    as_owner_a.post(f"/api/v1/deals/{c.pk}/mark-won/")

    def ids(query):
        response = as_owner_a.get(f"/api/v1/deals/?{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert set(ids("")) == {a.pk, b.pk, c.pk}
    assert ids(f"stage={stages_a['Proposal'].pk}") == [b.pk]
    assert set(ids("status=open")) == {a.pk, b.pk}
    assert ids("status=won") == [c.pk]
    assert ids(f"owner={rep.pk}") == [b.pk]
    assert ids("amount_min=200&amount_max=600") == [b.pk]
    assert ids("close_after=2026-01-01&close_before=2026-01-31") == [a.pk]
    assert ids("tags=HOT") == [b.pk]
    assert ids("cf_tier=gold") == [c.pk]
    assert ids("search=acme") == [a.pk]
    assert ids("search=byron") == [b.pk]
    assert ids("search=gam") == [c.pk]
    assert ids("ordering=amount") == [a.pk, b.pk, c.pk]
    assert ids("ordering=-amount") == [c.pk, b.pk, a.pk]
    assert ids(f"company={acme.pk}") == [a.pk]
    after = (timezone.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_after={after}") == []
    assert field_error(as_owner_a.get("/api/v1/deals/?cf_unknown=1"))["code"] == "unknown_filter"


@pytest.mark.parametrize(
    ("limit", "existing", "allowed"),
    [(3, 1, True), (3, 2, True), (3, 3, False), (3, 4, False)],  # below, reaching, at and past the limit
)
def test_deal_limit_at_the_edge(as_owner_a, org_a, owner_a, pipeline_a, make_deal, in_tenant, limit, existing, allowed):
    for _ in range(existing):
        make_deal(org_a, owner=owner_a)
    Override.objects.create(organization=org_a, limit="deals", limit_value=limit)
    invalidate_decisions(organization_id=org_a.pk)
    response = as_owner_a.post("/api/v1/deals/", {"title": "One more", "amount": "1"})
    if allowed:
        assert response.status_code == 201
    else:
        assert response.status_code == 403
        body = response.json()
        assert (body["code"], body["limit"], body["value"], body["used"]) == (
            "plan_limit_reached",
            "deals",
            3,
            existing,
        )
    with in_tenant(org_a):
        assert Deal.objects.count() == existing + (1 if allowed else 0)


def test_deal_usage_is_reported(as_owner_a, org_a, owner_a, pipeline_a, make_deal):
    make_deal(org_a, owner=owner_a)
    make_deal(org_a, owner=owner_a)
    from billing.usage import counter_for

    assert counter_for("deals")(org_a) == 2  # from the public schema too


def test_timeline_newest_first(as_owner_a, stages_a, org_a, owner_a, make_deal, in_tenant):
    from crm.models import Activity

    deal = make_deal(org_a, owner=owner_a)
    as_owner_a.post(f"/api/v1/deals/{deal.pk}/move-stage/", {"stage": stages_a["Proposal"].pk})
    with in_tenant(org_a):
        call = Activity.objects.create(kind="call", subject="Intro call", deal_id=deal.pk, owner=owner_a)
    as_owner_a.post(f"/api/v1/deals/{deal.pk}/mark-won/")
    items = as_owner_a.get(f"/api/v1/deals/{deal.pk}/timeline/").json()["results"]
    kinds = [(item["type"], item["data"].get("event") or item["data"].get("subject")) for item in items]
    # One entry per stage move: its deal.stage_changed event, with the actor every event has.
    assert kinds == [
        ("event", "deal.won"),
        ("event", "deal.stage_changed"),
        ("activity", "Intro call"),
        ("event", "deal.stage_changed"),
        ("event", "deal.created"),
    ]
    won_move = items[1]["data"]
    assert (won_move["payload"]["to_stage_name"], won_move["actor"]) == (
        "Won",
        {"id": owner_a.pk, "label": owner_a.email},
    )
    assert items[2]["data"]["id"] == call.pk
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    page = as_owner_a.get(f"/api/v1/deals/{deal.pk}/timeline/?page_size=3").json()
    assert (page["count"], len(page["results"])) == (5, 3)
    assert page["results"] == items[:3]


def test_amounts_are_decimal(org_a, owner_a, make_deal, pipeline_a, in_tenant):
    deal = make_deal(org_a, owner=owner_a, amount="0.10")
    with in_tenant(org_a):
        assert Deal.objects.get(pk=deal.pk).amount == Decimal("0.10")


def test_a_retried_create_makes_one_deal(as_owner_a, pipeline_a, org_a, in_tenant):
    headers = {"HTTP_IDEMPOTENCY_KEY": "create-deal-1"}
    first = as_owner_a.post("/api/v1/deals/", {"title": "Once"}, format="json", **headers)
    again = as_owner_a.post("/api/v1/deals/", {"title": "Once"}, format="json", **headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    with in_tenant(org_a):
        assert Deal.objects.filter(title="Once").count() == 1
