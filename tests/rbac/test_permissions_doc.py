import pytest
from django.core.management import call_command

from config.permissions import catalogue
from rbac.choices import SystemRole
from rbac.docs import permissions_markdown
from rbac.roles import default_grants

# The codes the product promises (issue: "Who may do what"), each with a description.
PROMISED = {
    "crm.lead.view",
    "crm.lead.create",
    "crm.lead.update",
    "crm.lead.delete",
    "crm.lead.export",
    "pipelines.deal.move_stage",
    "billing.subscription.manage",
    "rbac.member.manage",
    "integrations.apikey.manage",
}


def test_committed_permission_matrix_is_current():
    # Regenerate with `python manage.py permissions_doc` after changing declarations.
    call_command("permissions_doc", "--check")


def test_a_stale_matrix_is_detected(tmp_path, monkeypatch):
    from django.core.management.base import CommandError

    from rbac.management.commands import permissions_doc

    stale = tmp_path / "permissions.md"
    stale.write_text(permissions_markdown().replace("| Owner |", "| Boss |"))
    monkeypatch.setattr(permissions_doc, "TARGET", stale)
    with pytest.raises(CommandError, match="stale"):
        call_command("permissions_doc", "--check")
    stale.write_text(permissions_markdown())
    call_command("permissions_doc", "--check")


def test_matrix_lists_every_endpoint_and_role():
    content = permissions_markdown()
    assert "| GET | `/api/v1/leads/` | list | `crm.lead.view` |" in content
    assert "Sales Rep (own)" in content
    assert "`rbac.custom_roles`" in content
    header = "| permission | description | " + " | ".join(role.label for role in SystemRole) + " |"
    assert header in content
    for code, permission in catalogue().items():
        assert f"| `{code}` | {permission.description} |" in content


@pytest.mark.django_db
def test_the_six_system_roles():
    from rbac.models import Role

    assert [role.label for role in SystemRole] == ["Owner", "Admin", "Manager", "Sales Rep", "Support", "Viewer"]
    assert set(Role.objects.filter(organization=None).values_list("key", flat=True)) == {r.value for r in SystemRole}


def test_default_grants_keep_their_promises():
    """Sales Rep updates its own records only; Manager and above update all; only the Owner changes the plan
    and transfers ownership; the audit trail is for Owners and Admins."""
    grants = {role: default_grants(role) for role in SystemRole}
    for resource in ("lead", "contact", "company", "activity"):
        assert grants[SystemRole.SALES_REP][f"crm.{resource}.update"] == "own"
        for role in (SystemRole.OWNER, SystemRole.ADMIN, SystemRole.MANAGER):
            assert grants[role][f"crm.{resource}.update"] == "all"
    assert grants[SystemRole.SALES_REP]["pipelines.deal.update"] == "own"
    assert grants[SystemRole.MANAGER]["pipelines.deal.update"] == "all"
    for code in ("billing.subscription.manage", "rbac.ownership.transfer"):
        assert [role for role in SystemRole if code in grants[role]] == [SystemRole.OWNER]
    assert [role for role in SystemRole if "rbac.audit.view" in grants[role]] == [SystemRole.OWNER, SystemRole.ADMIN]
    assert set(grants[SystemRole.OWNER]) == set(catalogue())


@pytest.mark.django_db
def test_permission_catalogue_endpoint(owner_a, api):
    from ..conftest import client_for

    assert api.get("/api/v1/permissions/").status_code == 401
    response = client_for(owner_a).get("/api/v1/permissions/?page_size=100")  # a login, no organization needed
    assert response.status_code == 200
    assert response.json()["count"] == len(catalogue()) <= 100
    codes = {item["code"]: item for item in response.json()["results"]}
    assert set(codes) == set(catalogue())
    assert PROMISED <= set(codes)
    assert all(item["description"] for item in codes.values())
    assert codes["crm.lead.update"]["scoped"] is True
    assert codes["crm.lead.update"]["description"] == catalogue()["crm.lead.update"].description
    assert codes["billing.subscription.manage"]["scoped"] is False
