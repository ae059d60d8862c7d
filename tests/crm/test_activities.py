"""Activities: logging against a record, editing, completing, "my tasks" (overdue and due soon), filters, scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from crm import selectors
from crm.models import Activity

from ..problems import field_error

pytestmark = pytest.mark.django_db


def test_log_edit_and_delete_an_activity_with_events(as_owner_a, org_a, owner_a, make, events, in_tenant):
    contact = make.contact(org_a)
    response = as_owner_a.post(
        "/api/v1/activities/",
        {"kind": "call", "subject": " Intro call ", "body": "Went well", "contact": contact.pk},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["subject"], body["contact"], body["owner"]["id"]) == (
        "call",
        "Intro call",
        {"id": contact.pk, "name": str(contact)},
        owner_a.pk,
    )
    assert (body["company"], body["lead"], body["deal"]) == (None, None, None)  # references read {id, name}
    pk = body["id"]
    response = as_owner_a.patch(f"/api/v1/activities/{pk}/", {"body": "Went very well"}, format="json")
    assert response.status_code == 200
    assert response.json()["body"] == "Went very well"
    # The kind is fixed once logged.
    response = as_owner_a.patch(f"/api/v1/activities/{pk}/", {"kind": "note"}, format="json")
    assert response.json()["kind"] == "call"
    with in_tenant(org_a):
        activity = Activity.objects.get(pk=pk)
    assert events(org_a, "activity.created", activity)[0].payload["contact_id"] == contact.pk
    assert events(org_a, "activity.updated", activity)[0].payload["changes"] == {
        "body": ["Went well", "Went very well"]
    }
    assert as_owner_a.delete(f"/api/v1/activities/{pk}/").status_code == 204
    assert len(events(org_a, "activity.deleted", activity)) == 1


def test_an_activity_needs_a_record(as_owner_a, org_a, make):
    response = as_owner_a.post("/api/v1/activities/", {"kind": "note", "subject": "Floating"}, format="json")
    assert response.status_code == 400
    assert field_error(response)["code"] == "activity_target_required"
    activity = make.activity(org_a, contact=make.contact(org_a))
    response = as_owner_a.patch(f"/api/v1/activities/{activity.pk}/", {"contact": None}, format="json")
    assert response.status_code == 400
    assert field_error(response)["code"] == "activity_target_required"


@pytest.mark.parametrize("target", ["contact", "company", "lead", "deal"])
def test_each_record_type_can_be_a_target_but_not_a_foreign_one(as_owner_a, org_a, make, foreign, target):
    mine = getattr(make, target)(org_a)
    other = foreign(target)
    response = as_owner_a.post(
        "/api/v1/activities/", {"kind": "meeting", "subject": "Meet", target: mine.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()[target] == {"id": mine.pk, "name": str(mine)}
    response = as_owner_a.post(
        "/api/v1/activities/", {"kind": "meeting", "subject": "Meet", target: other.pk}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": target,
        "code": "does_not_exist",
        "detail": response.json()["errors"][0]["detail"],
    }


def test_sales_rep_cannot_attach_to_someone_elses_contact(rep_a, org_a, owner_a, make):
    _user, client = rep_a
    other = make.contact(org_a, owner=owner_a)
    response = client.post("/api/v1/activities/", {"kind": "note", "subject": "x", "contact": other.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "does_not_exist"


def test_complete_a_task_once(as_owner_a, org_a, make, events):
    task = make.activity(org_a, kind="task", contact=make.contact(org_a))
    response = as_owner_a.post(f"/api/v1/activities/{task.pk}/complete/")
    assert response.status_code == 200
    assert response.json()["completed_at"] is not None
    response = as_owner_a.post(f"/api/v1/activities/{task.pk}/complete/")
    assert response.status_code == 409
    assert response.json()["code"] == "activity_already_completed"
    assert len(events(org_a, "activity.completed", task)) == 1


def test_a_note_is_not_completed(as_owner_a, org_a, make):
    note = make.activity(org_a, kind="note", contact=make.contact(org_a))
    response = as_owner_a.post(f"/api/v1/activities/{note.pk}/complete/")
    assert response.status_code == 400
    assert response.json()["code"] == "activity_not_completable"


@pytest.fixture
def tasks(org_a, owner_a, rep_a, make, in_tenant):
    """The rep's tasks: overdue, due within the window, due later, done; the owner's task due within the window."""
    user, _client = rep_a
    contact = make.contact(org_a, owner=user)
    now = timezone.now()
    end = selectors.task_horizon(now)
    soon = now + timedelta(minutes=5)
    built = {
        "overdue": make.activity(org_a, kind="task", owner=user, contact=contact, due_at=now - timedelta(days=2)),
        "this_week": make.activity(org_a, kind="task", owner=user, contact=contact, due_at=soon),
        "later": make.activity(org_a, kind="task", owner=user, contact=contact, due_at=end + timedelta(days=30)),
        "done": make.activity(org_a, kind="task", owner=user, contact=contact, due_at=now - timedelta(days=1)),
        "note": make.activity(org_a, kind="note", owner=user, contact=contact, due_at=now),
        "boss": make.activity(org_a, kind="task", owner=owner_a, contact=contact, due_at=soon),
    }
    with in_tenant(org_a):
        Activity.objects.filter(pk=built["done"].pk).update(completed_at=now)
    return built


def test_my_tasks_due_within_the_window(rep_a, tasks):
    _user, client = rep_a
    response = client.get("/api/v1/activities/my-tasks/")
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [tasks["overdue"].pk, tasks["this_week"].pk]


def test_my_tasks_default_to_a_rolling_window_not_the_end_of_the_week(org_a, rep_a, make, monkeypatch):
    """On a Sunday evening "the end of this week" was hours away: nothing due on Monday showed."""
    user, client = rep_a
    sunday = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
    assert sunday.weekday() == 6
    monkeypatch.setattr(timezone, "now", lambda: sunday)
    contact = make.contact(org_a, owner=user)
    due = {
        name: make.activity(org_a, kind="task", owner=user, contact=contact, due_at=sunday + delta)
        for name, delta in [
            ("yesterday", timedelta(days=-1)),
            ("monday", timedelta(hours=15)),
            ("saturday", timedelta(days=6)),
            ("in_eight_days", timedelta(days=8)),
        ]
    }

    response = client.get("/api/v1/activities/my-tasks/")

    assert response.status_code == 200, response.content
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [due["yesterday"].pk, due["monday"].pk, due["saturday"].pk]


def test_my_tasks_document_the_window(api):
    operation = api.get("/api/schema/?format=json").json()["paths"]["/api/v1/activities/my-tasks/"]["get"]
    assert "next 7 days" in operation["description"]
    due_before = next(p for p in operation["parameters"] if p["name"] == "due_before")
    assert "7 days from now" in due_before["description"]


def test_my_tasks_with_a_given_horizon(rep_a, tasks):
    _user, client = rep_a
    horizon = (timezone.now() + timedelta(days=400)).isoformat().replace("+00:00", "Z")
    response = client.get("/api/v1/activities/my-tasks/", {"due_before": horizon})
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [tasks["overdue"].pk, tasks["this_week"].pk, tasks["later"].pk]
    assert client.get("/api/v1/activities/my-tasks/?due_before=soon").status_code == 400


def test_the_list_filters_give_the_same_answer(rep_a, tasks):
    user, client = rep_a
    end = selectors.task_horizon().isoformat()
    response = client.get(
        "/api/v1/activities/", {"mine": "true", "kind": "task", "open": "true", "due_before": end, "ordering": "due_at"}
    )
    assert [row["id"] for row in response.json()["results"]] == [tasks["overdue"].pk, tasks["this_week"].pk]


def test_activity_filters(as_owner_a, org_a, owner_a, make):
    contact, company = make.contact(org_a), make.company(org_a)
    lead = make.lead(org_a)
    on_contact = make.activity(org_a, kind="call", contact=contact, owner=owner_a)
    on_company = make.activity(org_a, kind="email", company=company, subject="Quote sent")
    on_lead = make.activity(org_a, kind="note", lead=lead, body="budget approved")

    def ids(query: str) -> set[int]:
        response = as_owner_a.get(f"/api/v1/activities/?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(f"contact={contact.pk}") == {on_contact.pk}
    assert ids(f"company={company.pk}") == {on_company.pk}
    assert ids(f"lead={lead.pk}") == {on_lead.pk}
    assert ids("kind=call&kind=email") == {on_contact.pk, on_company.pk}
    assert ids("mine=true") == {on_contact.pk}
    assert ids(f"owner={owner_a.pk}") == {on_contact.pk}
    assert ids("search=quote") == {on_company.pk}
    assert ids("search=budget") == {on_lead.pk}
    assert ids("open=false") == set()


def test_sales_rep_sees_and_edits_only_own_activities(rep_a, org_a, owner_a, make):
    user, client = rep_a
    contact = make.contact(org_a, owner=user)
    mine = make.activity(org_a, owner=user, contact=contact, kind="task")
    other = make.activity(org_a, owner=owner_a, contact=contact, kind="task")
    assert {row["id"] for row in client.get("/api/v1/activities/").json()["results"]} == {mine.pk}
    assert client.get(f"/api/v1/activities/{other.pk}/").status_code == 404
    assert client.patch(f"/api/v1/activities/{other.pk}/", {"subject": "x"}, format="json").status_code == 404
    assert client.post(f"/api/v1/activities/{other.pk}/complete/").status_code == 404
    assert client.delete(f"/api/v1/activities/{other.pk}/").status_code == 404
    assert client.post(f"/api/v1/activities/{mine.pk}/complete/").status_code == 200
