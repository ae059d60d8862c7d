"""Conversations and messages: private to their author, listed, renamed, deleted; answers as JSON or as a stream."""

from __future__ import annotations

import json

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections

from assistant.models import Message

from .fake_model import Reply

pytestmark = pytest.mark.django_db

BASE = "/api/v1/assistant/conversations/"


def events(response) -> list[tuple[str, dict]]:
    body = b"".join(response.streaming_content).decode()
    found = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_create_list_rename_delete(as_owner_a, conversation):
    first = conversation(title="Pipeline")
    conversation()
    listed = as_owner_a.get(BASE).json()
    assert listed["count"] == 2
    assert {"results", "next", "previous"} <= set(listed)
    renamed = as_owner_a.patch(f"{BASE}{first}/", {"title": "Q3 pipeline"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Q3 pipeline"
    assert as_owner_a.delete(f"{BASE}{first}/").status_code == 204
    assert as_owner_a.get(f"{BASE}{first}/").status_code == 404


def test_conversations_are_private_even_from_owners(org_a, member, as_owner_a, model):
    _rep, rep_client = member(org_a, "sales_rep")
    theirs = rep_client.post(BASE, {}, format="json").json()["id"]
    rep_client.post(f"{BASE}{theirs}/messages/", {"content": "hello"}, format="json")
    assert as_owner_a.get(f"{BASE}{theirs}/").status_code == 404
    assert as_owner_a.get(f"{BASE}{theirs}/messages/").status_code == 404
    assert as_owner_a.post(f"{BASE}{theirs}/messages/", {"content": "x"}, format="json").status_code == 404
    assert as_owner_a.get(BASE).json()["count"] == 0


def test_json_answer_is_kept_with_title(as_owner_a, conversation, model):
    pk = conversation()
    model.then(Reply(text="Hello there."))
    response = as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "Say hello"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["role"] == "assistant"
    assert body["content"] == "Hello there."
    assert body["status"] == "complete"
    assert body["references"] == []
    assert body["prompt_tokens"] == 10
    listed = as_owner_a.get(f"{BASE}{pk}/messages/").json()
    assert [m["role"] for m in listed["results"]] == ["user", "assistant"]
    assert as_owner_a.get(f"{BASE}{pk}/").json()["title"] == "Say hello"
    assert model.authorizations[0] == "Bearer test-key"


@pytest.mark.parametrize("how", ["query", "accept"])
def test_streamed_answer(as_owner_a, conversation, model, how):
    pk = conversation()
    model.then(Reply(text="One two three four.", pieces=4))
    url, headers = f"{BASE}{pk}/messages/", {}
    if how == "query":
        url += "?stream=true"
    else:
        headers["HTTP_ACCEPT"] = "text/event-stream"
    response = as_owner_a.post(url, {"content": "Count"}, format="json", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    found = events(response)
    deltas = [data["text"] for kind, data in found if kind == "delta"]
    assert len(deltas) == 4
    assert "".join(deltas) == "One two three four."
    kind, done = found[-1]
    assert kind == "done"
    assert done["content"] == "One two three four."
    assert done["status"] == "complete"


def test_history_goes_to_the_model(as_owner_a, conversation, model):
    pk = conversation()
    model.then(Reply(text="First answer."), Reply(text="Second."))
    as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "First question"}, format="json")
    as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "Second question"}, format="json")
    sent = model.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == "First answer."


def test_not_configured_is_503_and_counts_nothing(org_a, in_tenant, as_owner_a, conversation, settings):
    settings.ASSISTANT_MODEL = ""
    pk = conversation()
    response = as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "hi"}, format="json")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "assistant_not_configured"
    assert "ASSISTANT_MODEL" in body["detail"]
    with in_tenant(org_a):
        assert not Message.objects.exists()


def test_bad_input(as_owner_a, conversation, model):
    pk = conversation()
    assert as_owner_a.post(f"{BASE}{pk}/messages/", {}, format="json").status_code == 400
    response = as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "x", "skill": "summarize"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "record"


def test_answers_past_the_process_capacity_are_503_busy_and_count_nothing(
    as_owner_a, conversation, model, settings, org_a
):
    """An answer holds one of ``ASSISTANT_ANSWERS_PER_PROCESS`` slots until its stream ends or its response is
    closed; past them a message is 503 ``assistant_busy`` with ``Retry-After``, before the question is kept or
    counted, and a slot given back serves the next one."""
    from billing.choices import Meter
    from billing.metering import used_this_period

    settings.ASSISTANT_ANSWERS_PER_PROCESS = 1
    pk = conversation()
    model.then(
        Reply(text="A long answer.", pieces=3), Reply(text="Next."), Reply(text="The last answer, cut.", pieces=3)
    )
    streaming = as_owner_a.post(f"{BASE}{pk}/messages/?stream=true", {"content": "Tell me"}, format="json")
    assert streaming.status_code == 200
    used = used_this_period(organization=org_a, meter=Meter.COPILOT_MESSAGES)
    kept = as_owner_a.get(f"{BASE}{pk}/messages/").json()["count"]

    busy = as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "And now?"}, format="json")
    assert busy.status_code == 503
    assert busy.json()["code"] == "assistant_busy"
    assert busy["Retry-After"] == "5"
    assert used_this_period(organization=org_a, meter=Meter.COPILOT_MESSAGES) == used
    assert as_owner_a.get(f"{BASE}{pk}/messages/").json()["count"] == kept

    assert events(streaming)[-1][0] == "done"  # read to its end: the slot is given back
    assert as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "And now?"}, format="json").status_code == 201

    unread = as_owner_a.post(f"{BASE}{pk}/messages/?stream=true", {"content": "Once more"}, format="json")
    assert unread.status_code == 200
    # Never read, closed by the server: the answer is kept interrupted, the slot given back. (Closing fires
    # request_finished; like the test client, keep it from closing the test's database connection.)
    request_finished.disconnect(close_old_connections)
    try:
        unread.close()
    finally:
        request_finished.connect(close_old_connections)
    listed = as_owner_a.get(f"{BASE}{pk}/messages/?page_size=100").json()
    kept_answer = listed["results"][-1]
    assert (kept_answer["role"], kept_answer["status"]) == ("assistant", "interrupted")
    assert kept_answer["content"]  # what was said before the close
    assert "The last answer, cut.".startswith(kept_answer["content"])
    again = as_owner_a.post(f"{BASE}{pk}/messages/", {"content": "Again"}, format="json")
    assert again.status_code == 201, again.content
