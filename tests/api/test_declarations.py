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


def test_a_viewset_serving_control_plane_rows_without_organization_field_is_a_start_up_error(monkeypatch):
    """Control-plane rows (public schema) are limited to the request's organization by the base class, from the
    declared ``organization_field``: a viewset that forgot it would list every organization's rows."""
    from rbac.api.views import MemberViewSet

    monkeypatch.setattr(MemberViewSet, "organization_field", None)
    errors = check_authorization_declarations(None)
    assert [error.id for error in errors] == ["rbac.E006"]
    assert "MemberViewSet" in errors[0].msg
    assert "organization_field = 'organization'" in errors[0].msg


def test_every_viewset_of_control_plane_rows_declares_its_organization_field():
    from django.conf import settings

    from rbac.declarations import api_views

    served = {
        view.__name__: view.organization_field
        for _route, view, _actions in api_views()
        if view is not None
        and issubclass(view, OrganizationViewSet)
        and view.queryset is not None
        and view.queryset.model._meta.app_config.name not in settings.TENANT_APPS
    }
    assert served == {
        "ApiKeyViewSet": "organization",
        "AuditLogViewSet": "organization",
        "BillingViewSet": "organization",
        "CurrentOrganizationViewSet": "pk",
        "InvitationViewSet": "organization",
        "MemberViewSet": "organization",
        "RoleViewSet": "organization",
    }


def test_the_base_limits_control_plane_rows_to_the_organization_whatever_the_hook_returns(
    monkeypatch, org_a, org_b, owner_a, as_owner_a
):
    """A hook that starts over from every row (``Membership.objects.all()``) still serves only org A's: the base
    limits what the hook returns."""
    from rbac.api.views import MemberViewSet
    from rbac.models import Membership

    monkeypatch.setattr(MemberViewSet, "prepare_queryset", lambda self, queryset: Membership.objects.all())
    emails = {row["user"]["email"] for row in as_owner_a.get("/api/v1/members/?page_size=100").json()["results"]}
    assert owner_a.email in emails
    assert "owner@org-b.test" not in emails
