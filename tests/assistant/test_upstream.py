"""The model server failing: clear problems with Retry-After, and a conversation left consistent whatever breaks;
the month's messages metered against the plan."""

from __future__ import annotations

import json

import pytest

from assistant.models import Message, MonthlyUsage
from billing.models import Override
from config.decision_cache import invalidate_decisions

from .fake_model import Reply
from .test_conversations import events

pytestmark = pytest.mark.django_db

BASE = "/api/v1/assistant/conversations/"


def kept(org_a, in_tenant) -> list[tuple[str, str, str, str]]:
    with in_tenant(org_a):
        return list(Message.objects.order_by("pk").values_list("role", "status", "error_code", "content"))


@pytest.mark.parametrize(
    ("reply", "status", "code", "retry_after"),
    [
        (Reply(status=429, headers={"Retry-After": "7"}), 503, "assistant_rate_limited", "7"),
        (Reply(status=500), 503, "assistant_unavailable", "10"),
        (Reply(status=401), 502, "assistant_upstream_error", None),
        (Reply(hang=3), 504, "assistant_timeout", "10"),
    ],
    ids=["429", "500", "401", "timeout"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_failures_are_problems(org_a, in_tenant, as_owner_a, conversation, model, reply, status, code,
                                        retry_after, stream):  # fmt: skip
    pk = conversation()
    model.then(reply)
    response = as_owner_a.post(f"{BASE}{pk}/messages/{'?stream=true' if stream else ''}", {"content": "hi"},
                               format="json")  # fmt: skip
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert response.get("Retry-After") == retry_after
    assert kept(org_a, in_tenant) == [("user", "complete", "", "hi"), ("assistant", "failed", code, "")]


def test_a_stream_cut_halfway_leaves_a_marked_partial_answer(org_a, in_tenant, as_owner_a, conversation, model):
    pk = conversation()
    model.then(Reply(text="The first half. The second half.", pieces=4, cut=True))
    response = as_owner_a.post(f"{BASE}{pk}/messages/?stream=true", {"content": "hi"}, format="json")
    assert response.status_code == 200
    found = events(response)
    assert found[0][0] == "delta"
    kind, problem = found[-1]
    assert kind == "error"
    assert problem["code"] in ("assistant_unavailable", "assistant_upstream_error")
    [question, answer] = kept(org_a, in_tenant)
    assert answer[:2] == ("assistant", "failed")
    assert answer[3] == "".join(data["text"] for kind, data in found if kind == "delta")
    model.then(Reply(text="Fine now."))  # the conversation goes on
    assert as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "again"}, format="json").status_code == 201


HELLO = json.dumps({"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]})


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(raw=[HELLO, "{not json"]), "assistant_upstream_error"),
        (Reply(raw=[HELLO, json.dumps({"choices": "none"})]), "assistant_upstream_error"),
        (Reply(raw=[HELLO, json.dumps({"error": {"message": "overloaded"}})]), "assistant_upstream_error"),
        (Reply(raw=[HELLO, HELLO], delay=2.5), "assistant_timeout"),  # silent past the timeout (1 s here)
    ],
    ids=["not-json", "not-a-chunk", "error-event", "read-timeout"],
)
def test_a_stream_failing_after_it_began(org_a, in_tenant, as_owner_a, conversation, model, reply, code):
    pk = conversation()
    model.then(reply)
    response = as_owner_a.post(f"{BASE}{pk}/messages/?stream=true", {"content": "hi"}, format="json")
    assert response.status_code == 200
    found = events(response)
    assert found[0] == ("delta", {"text": "Hel"})
    assert found[-1][0] == "error"
    assert found[-1][1]["code"] == code
    assert kept(org_a, in_tenant) == [("user", "complete", "", "hi"), ("assistant", "failed", code, "Hel")]


def test_a_client_leaving_mid_stream_keeps_what_was_said(org_a, in_tenant, as_owner_a, conversation, model):
    pk = conversation()
    model.then(Reply(text="a b c d e f g h", pieces=8, delay=0.05))
    response = as_owner_a.post(f"{BASE}{pk}/messages/?stream=true", {"content": "hi"}, format="json")
    chunks = iter(response.streaming_content)
    next(chunks)
    # What the server does when the client's connection drops: close the response's iterator. (Through the test
    # client's wrapper, which keeps the test's database connection open; response.close() would close it.)
    for close in list(response._resource_closers):
        close()
    [question, answer] = kept(org_a, in_tenant)
    assert question[:2] == ("user", "complete")
    assert answer[:2] == ("assistant", "interrupted")
    assert answer[3] == "a "


def test_messages_are_metered_against_the_plan(org_a, in_tenant, as_owner_a, conversation, model):
    Override.objects.create(organization=org_a, limit="copilot_messages_per_month", limit_value=2)
    invalidate_decisions(organization_id=org_a.pk)
    pk = conversation()
    for _ in range(2):
        assert as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "hi"}, format="json").status_code == 201
    response = as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "hi"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "plan_limit_reached"
    assert len(model.requests) == 2
    usage = {row["limit"]: row for row in as_owner_a.get("/api/v1/billing/usage/").json()["results"]}
    assert usage["copilot_messages_per_month"]["used"] == 2
    assert usage["copilot_messages_per_month"]["value"] == 2
    assert as_owner_a.delete(f"{BASE}{pk}/").status_code == 204  # deleting does not give messages back
    with in_tenant(org_a):
        month = MonthlyUsage.objects.get()
        assert month.prompt_tokens == 20
        assert month.completion_tokens == 10


def test_the_plan_without_the_copilot(org_a, as_owner_a):
    from billing.models import Feature

    Override.objects.create(organization=org_a, feature=Feature.objects.get(code="assistant.copilot"), enabled=False)
    invalidate_decisions(organization_id=org_a.pk)
    response = as_owner_a.get(BASE)
    assert response.status_code == 403
    assert response.json()["code"] == "feature_not_in_plan"
    assert response.json()["plan"]["code"] == "pro"
