import pytest
from django.core.management import call_command

from rbac.docs import permissions_markdown


def test_committed_permission_matrix_is_current():
    # Regenerate with `python manage.py permissions_doc` after changing declarations.
    call_command("permissions_doc", "--check")


def test_matrix_lists_every_endpoint_and_role():
    content = permissions_markdown()
    assert "| GET | `/api/v1/leads/` | list | `crm.lead.view` |" in content
    assert "Sales Rep (own)" in content
    assert "`rbac.custom_roles`" in content


@pytest.mark.django_db
def test_permission_catalogue_endpoint(owner_a):
    from ..conftest import client_for

    response = client_for(owner_a).get("/api/v1/permissions/")
    assert response.status_code == 200
    codes = {item["code"]: item for item in response.json()}
    assert codes["crm.lead.update"]["scoped"] is True
    assert codes["billing.subscription.manage"]["scoped"] is False
    assert {"crm.lead.view", "pipelines.deal.move_stage", "rbac.member.manage", "integrations.apikey.manage"} <= set(
        codes
    )
