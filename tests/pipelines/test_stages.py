"""Stages: add at a position, reorder, delete with its deals moved, validation. Positions stay gapless 0..n-1."""

import pytest

from integrations.models import OutboxEvent
from pipelines.models import Deal, Stage, StageChange

from ..problems import field_error
from .conftest import positions

pytestmark = pytest.mark.django_db


def _names(org, pipeline, in_tenant) -> list[str]:
    with in_tenant(org):
        return list(Stage.objects.filter(pipeline=pipeline).order_by("position").values_list("name", flat=True))


def test_add_a_stage_at_a_position_and_at_the_end(as_owner_a, pipeline_a, org_a, in_tenant):
    response = as_owner_a.post(
        "/api/v1/stages/", {"pipeline": pipeline_a.pk, "name": "Demo", "probability": 40, "position": 2}
    )
    assert response.status_code == 201, response.json()
    assert response.json()["position"] == 2
    as_owner_a.post("/api/v1/stages/", {"pipeline": pipeline_a.pk, "name": "Contract", "probability": 90})
    assert _names(org_a, pipeline_a, in_tenant) == [
        "Qualification",
        "Needs analysis",
        "Demo",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
        "Contract",
    ]
    assert positions(org_a, pipeline_a, in_tenant) == list(range(8))
    listed = as_owner_a.get(f"/api/v1/stages/?pipeline={pipeline_a.pk}").json()["results"]
    assert [s["position"] for s in listed] == list(range(8))


def test_a_second_won_stage_is_refused(as_owner_a, pipeline_a):
    response = as_owner_a.post(
        "/api/v1/stages/", {"pipeline": pipeline_a.pk, "name": "Won again", "probability": 100, "kind": "won"}
    )
    assert response.status_code == 400  # new stages are open


def test_update_stage_and_probability_rules(as_owner_a, stages_a):
    qualification, won = stages_a["Qualification"], stages_a["Won"]
    response = as_owner_a.patch(
        f"/api/v1/stages/{qualification.pk}/", {"name": "Qualified", "probability": 15, "rotting_days": 5}
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["probability"], response.json()["rotting_days"]) == (
        "Qualified",
        15,
        5,
    )
    assert as_owner_a.patch(f"/api/v1/stages/{qualification.pk}/", {"probability": 101}).status_code == 400
    response = as_owner_a.patch(f"/api/v1/stages/{won.pk}/", {"probability": 90})
    assert field_error(response)["code"] == "invalid_probability"


def test_reorder(as_owner_a, pipeline_a, stages_a, org_a, in_tenant):
    order = ["Lost", "Won", "Negotiation", "Proposal", "Needs analysis", "Qualification"]
    response = as_owner_a.post(
        f"/api/v1/pipelines/{pipeline_a.pk}/reorder-stages/", {"stages": [stages_a[n].pk for n in order]}
    )
    assert response.status_code == 200, response.json()
    stages = response.json()["stages"]
    assert [(s["name"], s["position"]) for s in stages] == [(n, i) for i, n in enumerate(order)]
    assert _names(org_a, pipeline_a, in_tenant) == order


@pytest.mark.parametrize("mutation", ["missing", "duplicate", "foreign", "extra"])
def test_reorder_must_list_every_stage_once(as_owner_a, pipeline_a, stages_a, org_a, in_tenant, mutation):
    ids = [s.pk for s in sorted(stages_a.values(), key=lambda s: s.position)]
    before = _names(org_a, pipeline_a, in_tenant)
    if mutation == "missing":
        ids = ids[:-1]
    elif mutation == "duplicate":
        ids = [ids[0], *ids[:-1]]
    elif mutation == "foreign":
        ids = [*ids[:-1], 999999]
    else:
        ids = [*ids, 999999]
    response = as_owner_a.post(f"/api/v1/pipelines/{pipeline_a.pk}/reorder-stages/", {"stages": ids})
    assert field_error(response)["code"] == "invalid_stage_order"
    assert _names(org_a, pipeline_a, in_tenant) == before


def test_delete_an_empty_stage_closes_the_gap(as_owner_a, pipeline_a, stages_a, org_a, in_tenant):
    assert as_owner_a.delete(f"/api/v1/stages/{stages_a['Needs analysis'].pk}/").status_code == 204
    assert _names(org_a, pipeline_a, in_tenant) == ["Qualification", "Proposal", "Negotiation", "Won", "Lost"]
    assert positions(org_a, pipeline_a, in_tenant) == list(range(5))


def test_delete_a_stage_with_deals_needs_a_target_and_moves_them(
    as_owner_a, pipeline_a, stages_a, org_a, owner_a, in_tenant, make_deal
):
    proposal, negotiation = stages_a["Proposal"], stages_a["Negotiation"]
    deals = [make_deal(org_a, owner=owner_a, stage=proposal) for _ in range(3)]
    other = make_deal(org_a, owner=owner_a, stage=negotiation)

    response = as_owner_a.delete(f"/api/v1/stages/{proposal.pk}/")
    assert field_error(response)["code"] == "move_to_required"
    for target, code in [(proposal, "invalid_move_target"), (stages_a["Won"], "invalid_move_target")]:
        response = as_owner_a.delete(f"/api/v1/stages/{proposal.pk}/?move_to={target.pk}")
        assert field_error(response)["code"] == code
    with in_tenant(org_a):
        assert Deal.objects.filter(stage=proposal).count() == 3

    response = as_owner_a.delete(f"/api/v1/stages/{proposal.pk}/", {"move_to": negotiation.pk})
    assert response.status_code == 204
    assert _names(org_a, pipeline_a, in_tenant) == ["Qualification", "Needs analysis", "Negotiation", "Won", "Lost"]
    assert positions(org_a, pipeline_a, in_tenant) == list(range(5))
    with in_tenant(org_a):
        assert set(Deal.objects.filter(stage=negotiation).values_list("pk", flat=True)) == {
            *(d.pk for d in deals),
            other.pk,
        }
        moved = StageChange.objects.filter(deal__in=deals, to_stage=negotiation)
        assert moved.count() == 3
        assert set(moved.values_list("from_stage_name", "to_stage_name", "changed_by_id")) == {
            ("Proposal", "Negotiation", owner_a.pk)
        }
        assert all(change.time_in_previous_stage is not None for change in moved)
        events = OutboxEvent.objects.filter(type="deal.stage_changed", subject_id__in=[str(d.pk) for d in deals])
        assert events.count() == 3
        assert {(e.payload["from_stage_name"], e.payload["to_stage"]) for e in events} == {("Proposal", negotiation.pk)}


def test_a_stage_of_another_pipeline_is_no_target(as_owner_a, stages_a, org_a, owner_a, make_deal):
    other = as_owner_a.post("/api/v1/pipelines/", {"name": "Partners"}).json()
    make_deal(org_a, owner=owner_a, stage=stages_a["Proposal"])
    response = as_owner_a.delete(f"/api/v1/stages/{stages_a['Proposal'].pk}/?move_to={other['stages'][0]['id']}")
    assert field_error(response)["code"] == "invalid_move_target"


def test_won_lost_and_last_open_stage_stay(as_owner_a, pipeline_a, stages_a, org_a, in_tenant):
    for name in ("Won", "Lost"):
        response = as_owner_a.delete(f"/api/v1/stages/{stages_a[name].pk}/")
        assert (response.status_code, response.json()["code"]) == (409, "closing_stage_required")
    for name in ("Qualification", "Needs analysis", "Proposal"):
        assert as_owner_a.delete(f"/api/v1/stages/{stages_a[name].pk}/").status_code == 204
    response = as_owner_a.delete(f"/api/v1/stages/{stages_a['Negotiation'].pk}/")
    assert (response.status_code, response.json()["code"]) == (409, "last_open_stage")
    assert _names(org_a, pipeline_a, in_tenant) == ["Negotiation", "Won", "Lost"]
    assert positions(org_a, pipeline_a, in_tenant) == [0, 1, 2]
