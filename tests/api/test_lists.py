"""One list shape: every collection answers the same page, ``{count, next, previous, results}``, paged with
``page`` and ``page_size``; tests/api/test_schema.py holds the document to it, this file the answers."""

import pytest
from django.test import Client

from ..conftest import client_for

pytestmark = pytest.mark.django_db

PAGE = {"count", "next", "previous", "results"}


@pytest.fixture
def deal(as_owner_a):
    deal = as_owner_a.post("/api/v1/deals/", {"title": "Big one"}, format="json").json()
    stages = as_owner_a.get(f"/api/v1/pipelines/{deal['pipeline']['id']}/").json()["stages"]
    as_owner_a.post(f"/api/v1/deals/{deal['id']}/move-stage/", {"stage": stages[1]["id"]}, format="json")
    as_owner_a.post("/api/v1/deals/", {"title": "Second", "stage": stages[1]["id"]}, format="json")
    as_owner_a.post("/api/v1/activities/", {"kind": "call", "subject": "Hi", "deal": deal["id"]}, format="json")
    return deal | {"stages": stages}


def _assert_pages(client, url, at_least=2):
    first = client.get(url, {"page_size": 1})
    assert first.status_code == 200, first.content
    body = first.json()
    assert set(body) == PAGE, url
    assert body["count"] >= at_least, url
    assert len(body["results"]) == 1
    second = client.get(body["next"]).json()
    assert set(second) == PAGE
    assert second["results"]
    assert second["results"] != body["results"]
    return body


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/deals/{deal}/timeline/",
        "/api/v1/stages/{stage}/deals/",
        "/api/v1/billing/usage/",
        "/api/v1/webhooks/event-types/",
        "/api/v1/roles/",
        "/api/v1/permissions/",
        "/api/v1/deals/",
    ],
)
def test_collections_answer_pages(as_owner_a, deal, url):
    _assert_pages(as_owner_a, url.format(deal=deal["id"], stage=deal["stages"][1]["id"]))


def test_the_deal_timeline_pages_like_the_record_timelines(as_owner_a, deal):
    body = as_owner_a.get(f"/api/v1/deals/{deal['id']}/timeline/").json()
    assert {item["type"] for item in body["results"]} == {"activity", "event"}  # a stage move: its event, once
    assert body["count"] == len(body["results"])
    ats = [item["at"] for item in body["results"]]
    assert ats == sorted(ats, reverse=True)
    assert as_owner_a.get(f"/api/v1/deals/{deal['id']}/timeline/?page_size=101").json()["count"] == body["count"]


def test_public_and_personal_collections_are_pages_too(owner_a, org_a):
    assert set(Client().get("/api/v1/plans/").json()) == PAGE
    assert set(client_for(owner_a).get("/api/v1/organizations/").json()) == PAGE
    assert set(client_for(owner_a).get("/api/v1/permissions/").json()) == PAGE
