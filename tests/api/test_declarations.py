"""Meta-tests: the spine of every endpoint is declared and enforced, and a hole is caught at start-up."""

import pytest

from config.api.viewsets import OrganizationViewSet
from crm.api.views import LeadViewSet
from rbac.checks import check_authorization_declarations


def test_the_project_passes_its_own_declaration_check():
    assert check_authorization_declarations(None) == []


def test_an_undeclared_action_is_a_start_up_error(monkeypatch):
    declared = dict(LeadViewSet.action_permissions)
    del declared["qualify"]
    monkeypatch.setattr(LeadViewSet, "action_permissions", declared)
    errors = check_authorization_declarations(None)
    assert [error.id for error in errors] == ["rbac.E003"]
    assert "LeadViewSet.qualify" in errors[0].msg


def test_an_unknown_permission_code_is_a_start_up_error(monkeypatch):
    monkeypatch.setattr(LeadViewSet, "action_permissions", {**LeadViewSet.action_permissions, "list": "crm.lead.peek"})
    assert [error.id for error in check_authorization_declarations(None)] == ["rbac.E004"]


def test_an_unknown_feature_is_a_start_up_error(monkeypatch):
    monkeypatch.setattr(LeadViewSet, "required_feature", "crm.teleport")
    assert {error.id for error in check_authorization_declarations(None)} == {"rbac.E005"}


def test_an_undeclared_action_is_refused_at_run_time_too(monkeypatch, as_owner_a):
    monkeypatch.setattr(LeadViewSet, "action_permissions", {"retrieve": "crm.lead.view"})
    response = as_owner_a.get("/api/v1/leads/")
    assert response.status_code == 403


@pytest.mark.parametrize("method", ["get_queryset", "get_permissions", "initial", "finalize_response"])
def test_subclasses_cannot_override_the_spine(method):
    with pytest.raises(TypeError, match="overrides"):
        type("Sneaky", (OrganizationViewSet,), {method: lambda self: None})
