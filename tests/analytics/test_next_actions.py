"""Next-best-actions: each rule with its reason, priority and suggestion; the ranked "my next actions" list."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def _actions(client, deal):
    response = client.get(f"/api/v1/analytics/deals/{deal.pk}/next-actions/")
    assert response.status_code == 200, response.content
    return {item["kind"]: item for item in response.json()["results"]}


def test_each_rule_gives_its_reason(as_owner_a, owner_a, history):
    now = timezone.now()
    contact = history.contact(owner=owner_a)
    # rotting in Proposal (21 days), close date passed, no activity for 30 days, no next step, no contact
    stuck = history.deal(
        owner=owner_a,
        amount="500",
        created=now - timedelta(days=40),
        path=[("Proposal", now - timedelta(days=30))],
        expected_close_date=(now - timedelta(days=5)).date(),
    )
    history.activity(owner=owner_a, created=now - timedelta(days=30), deal=stuck)
    actions = _actions(as_owner_a, stuck)
    assert set(actions) == {"close_date_passed", "rotting", "no_next_activity", "stale", "no_contact"}
    assert actions["close_date_passed"]["reason"].endswith("5 days ago.")
    assert actions["close_date_passed"]["priority"] == "high"
    assert actions["rotting"]["reason"] == "In Proposal for 30 days; deals rot there after 21."
    assert actions["stale"]["reason"] == "No activity logged for 30 days."
    assert actions["no_next_activity"]["priority"] == "medium"
    assert actions["no_contact"]["priority"] == "low"
    assert list(actions)[0] == "close_date_passed"  # most urgent first

    # a healthy deal: recent, a contact, a task ahead, closing later
    healthy = history.deal(
        owner=owner_a,
        created=now - timedelta(days=2),
        contact=contact,
        expected_close_date=(now + timedelta(days=30)).date(),
    )
    history.activity(owner=owner_a, created=now, kind="task", deal=healthy, due_at=now + timedelta(days=1))
    assert _actions(as_owner_a, healthy) == {}


def test_high_value_at_risk(as_owner_a, owner_a, history):
    now = timezone.now()
    contact = history.contact(owner=owner_a)
    small = [
        history.deal(owner=owner_a, amount=str(100 * (i + 1)), created=now - timedelta(days=1), contact=contact)
        for i in range(8)
    ]
    big = history.deal(owner=owner_a, amount="100000", created=now - timedelta(days=1), contact=contact)
    actions = _actions(as_owner_a, big)
    assert "high_value_at_risk" in actions  # top 20% by amount, and nothing scheduled
    assert actions["high_value_at_risk"]["priority"] == "high"
    assert "high_value_at_risk" not in _actions(as_owner_a, small[0])


def test_my_next_actions_are_ranked_by_urgency(as_owner_a, owner_a, member, org_a, history):
    now = timezone.now()
    contact = history.contact(owner=owner_a)
    late = history.deal(
        owner=owner_a, created=now, contact=contact, expected_close_date=(now - timedelta(days=1)).date()
    )
    idle = history.deal(owner=owner_a, created=now, contact=contact)
    rep, _client = member(org_a, "sales_rep")
    history.deal(owner=rep, created=now, expected_close_date=(now - timedelta(days=1)).date())
    page = as_owner_a.get("/api/v1/analytics/next-actions/").json()
    assert [item["deal"]["id"] for item in page["results"]] == [late.pk, idle.pk]  # the Owner's own deals only
    first = page["results"][0]
    assert first["action"] == "close_date_passed"
    assert first["priority"] == "high"
    assert first["suggested_action"].startswith("Confirm the timeline")
    assert first["score"] == 70 + 50  # close date passed + no next activity
    assert [reason["kind"] for reason in first["reasons"]] == ["close_date_passed", "no_next_activity"]


def test_a_closed_deal_needs_nothing(as_owner_a, owner_a, history):
    now = timezone.now()
    won = history.deal(owner=owner_a, created=now - timedelta(days=3), won=now)
    response = as_owner_a.get(f"/api/v1/analytics/deals/{won.pk}/next-actions/")
    assert response.status_code == 200
    assert response.json()["count"] == 0
