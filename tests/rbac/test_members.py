import pytest

from rbac.models import AuditEntry, Membership, Role

from ..conftest import client_for
from ..problems import field_error

pytestmark = pytest.mark.django_db


def _member_id(org, user):
    return Membership.objects.get(organization=org, user=user).pk


def test_members_list_and_filter(as_owner_a, org_a, member):
    member(org_a, "viewer")
    member(org_a, "sales_rep")
    body = as_owner_a.get("/api/v1/members/").json()
    assert body["count"] == 3
    roles = {row["role"]["key"] for row in as_owner_a.get("/api/v1/members/?role=viewer").json()["results"]}
    assert roles == {"viewer"}


def test_the_last_owner_cannot_leave_be_demoted_deactivated_or_removed(as_owner_a, org_a, owner_a):
    me = _member_id(org_a, owner_a)
    viewer = Role.objects.get(organization=None, key="viewer")
    for response in (
        as_owner_a.patch(f"/api/v1/members/{me}/", {"role": viewer.pk}, format="json"),
        as_owner_a.post(f"/api/v1/members/{me}/deactivate/"),
        as_owner_a.delete(f"/api/v1/members/{me}/"),
        as_owner_a.post("/api/v1/members/leave/"),
    ):
        assert response.status_code == 409
        assert response.json()["code"] == "last_owner"
    assert Membership.objects.get(pk=me).is_active


def test_with_a_second_owner_the_first_may_leave(as_owner_a, org_a, owner_a, member):
    other, _client = member(org_a, "owner")
    assert as_owner_a.post("/api/v1/members/leave/").status_code == 204
    assert not Membership.objects.filter(organization=org_a, user=owner_a).exists()
    assert as_owner_a.get("/api/v1/organizations/current/").status_code == 404  # no longer a member, next request


def test_transfer_ownership(as_owner_a, org_a, owner_a, member):
    heir, heir_client = member(org_a, "manager")
    response = as_owner_a.post(
        "/api/v1/members/transfer-ownership/", {"to_member": _member_id(org_a, heir)}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["role"]["key"] == "owner"
    assert Membership.objects.get(organization=org_a, user=owner_a).role.key == "admin"
    assert heir_client.get("/api/v1/organizations/current/").json()["role"] == "owner"
    # the former owner, now admin, may not transfer ownership any more
    again = as_owner_a.post("/api/v1/members/transfer-ownership/", {"to_member": _member_id(org_a, heir)})
    assert again.status_code == 403


def test_role_change_applies_on_the_next_request_and_is_audited(as_owner_a, org_a, owner_a, member):
    user, client = member(org_a, "viewer")
    assert client.post("/api/v1/leads/", {"name": "x"}, format="json").status_code == 403
    manager = Role.objects.get(organization=None, key="manager")
    response = as_owner_a.patch(f"/api/v1/members/{_member_id(org_a, user)}/", {"role": manager.pk}, format="json")
    assert response.status_code == 200
    assert client.post("/api/v1/leads/", {"name": "x"}, format="json").status_code == 201
    entry = AuditEntry.objects.get(organization=org_a, action="membership.role_changed")
    assert (entry.before["role"], entry.after["role"], entry.actor_label) == ("viewer", "manager", owner_a.email)


def test_deactivated_member_loses_access_next_request(as_owner_a, org_a, member):
    user, client = member(org_a, "viewer")
    assert client.get("/api/v1/organizations/current/").status_code == 200
    as_owner_a.post(f"/api/v1/members/{_member_id(org_a, user)}/deactivate/")
    assert client.get("/api/v1/organizations/current/").status_code == 404
    as_owner_a.post(f"/api/v1/members/{_member_id(org_a, user)}/activate/")
    assert client.get("/api/v1/organizations/current/").status_code == 200


def test_manager_cannot_manage_members(org_a, member):
    target, _ = member(org_a, "viewer")
    _manager, client = member(org_a, "manager")
    response = client.post(f"/api/v1/members/{_member_id(org_a, target)}/deactivate/")
    assert response.status_code == 403
    assert response.json()["permission"] == "rbac.member.manage"


def test_admin_cannot_hand_out_owner(org_a, member):
    target, _ = member(org_a, "viewer")
    _admin, client = member(org_a, "admin")
    owner_role = Role.objects.get(organization=None, key="owner")
    response = client.patch(f"/api/v1/members/{_member_id(org_a, target)}/", {"role": owner_role.pk}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "grant_exceeds_own"


def test_only_who_may_transfer_ownership_changes_an_owner(as_owner_a, org_a, member):
    """An Admin manages members but not owners: demoting, deactivating, removing or reactivating an owner is 403
    ``permission_denied`` naming ``rbac.ownership.transfer``, even with another owner left."""
    second_owner, _client = member(org_a, "owner")
    _admin, admin = member(org_a, "admin")
    target = _member_id(org_a, second_owner)
    viewer = Role.objects.get(organization=None, key="viewer")
    for response in (
        admin.patch(f"/api/v1/members/{target}/", {"role": viewer.pk}, format="json"),
        admin.post(f"/api/v1/members/{target}/deactivate/"),
        admin.delete(f"/api/v1/members/{target}/"),
    ):
        assert response.status_code == 403, response.content
        assert (response.json()["code"], response.json()["permission"]) == (
            "permission_denied",
            "rbac.ownership.transfer",
        )
    membership = Membership.objects.get(pk=target)
    assert (membership.role.key, membership.is_active) == ("owner", True)
    assert not AuditEntry.objects.filter(organization=org_a, target_id=target).exclude(action="membership.created")

    # The owner may, and a deactivated owner comes back only through someone who may transfer the ownership.
    assert as_owner_a.post(f"/api/v1/members/{target}/deactivate/").status_code == 200
    refused = admin.post(f"/api/v1/members/{target}/activate/")
    assert (refused.status_code, refused.json()["permission"]) == (403, "rbac.ownership.transfer")
    assert not Membership.objects.get(pk=target).is_active
    assert as_owner_a.post(f"/api/v1/members/{target}/activate/").status_code == 200
    # Members who are not owners stay the Admin's to manage.
    other, _client = member(org_a, "viewer")
    assert admin.post(f"/api/v1/members/{_member_id(org_a, other)}/deactivate/").status_code == 200


def test_role_of_another_organization_is_unknown(as_owner_a, org_a, org_b, member):
    target, _ = member(org_a, "viewer")
    foreign = Role.objects.create(organization=org_b, key="b-only", name="B only", grants={})
    response = as_owner_a.patch(f"/api/v1/members/{_member_id(org_a, target)}/", {"role": foreign.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "role"


def test_member_of_another_organization_is_404(as_owner_a, org_b, owner_b):
    response = as_owner_a.get(f"/api/v1/members/{_member_id(org_b, owner_b)}/")
    assert response.status_code == 404


def test_custom_roles(as_owner_a, org_a, member):
    response = as_owner_a.post(
        "/api/v1/roles/",
        {"name": "Lead hunter", "grants": {"crm.lead.view": "own", "crm.lead.create": "all"}},
        format="json",
    )
    assert response.status_code == 201
    role = response.json()
    assert role["is_system"] is False
    assert role["grants"] == {"crm.lead.create": "all", "crm.lead.view": "own"}

    bad_scope = as_owner_a.post("/api/v1/roles/", {"name": "X", "grants": {"crm.lead.create": "own"}}, format="json")
    assert field_error(bad_scope)["code"] == "invalid_scope"
    unknown = as_owner_a.post("/api/v1/roles/", {"name": "Y", "grants": {"crm.nothing": "all"}}, format="json")
    assert field_error(unknown)["code"] == "unknown_permission"

    user, client = member(org_a, "viewer")
    as_owner_a.patch(f"/api/v1/members/{_member_id(org_a, user)}/", {"role": role["id"]}, format="json")
    assert client.post("/api/v1/leads/", {"name": "mine"}, format="json").status_code == 201
    in_use = as_owner_a.delete(f"/api/v1/roles/{role['id']}/")
    assert (in_use.status_code, in_use.json()["code"]) == (409, "role_in_use")

    renamed = as_owner_a.patch(f"/api/v1/roles/{role['id']}/", {"grants": {"crm.lead.view": "all"}}, format="json")
    assert renamed.status_code == 200
    assert client.post("/api/v1/leads/", {"name": "again"}, format="json").status_code == 403  # next request

    system = Role.objects.get(organization=None, key="viewer")
    read_only = as_owner_a.patch(f"/api/v1/roles/{system.pk}/", {"name": "Watcher"}, format="json")
    assert (read_only.status_code, read_only.json()["code"]) == (409, "system_role_read_only")


def test_roles_list_has_system_and_own_custom_roles_only(as_owner_a, org_b):
    Role.objects.create(organization=org_b, key="b-role", name="B role", grants={})
    keys = {role["key"] for role in as_owner_a.get("/api/v1/roles/").json()["results"]}
    assert keys == {"owner", "admin", "manager", "sales_rep", "support", "viewer"}


def test_audit_log_for_owners_and_admins_only(as_owner_a, org_a, org_b, member):
    _viewer, _ = member(org_a, "viewer")
    _admin, admin = member(org_a, "admin")
    _manager, manager = member(org_a, "manager")
    AuditEntry.objects.create(organization=org_b, action="secret.b", target_type="x")
    body = admin.get("/api/v1/audit-log/?action=membership.created").json()
    assert body["count"] == 4  # the owner's and the three above
    assert all(entry["action"] == "membership.created" for entry in body["results"])
    assert "secret.b" not in {e["action"] for e in as_owner_a.get("/api/v1/audit-log/").json()["results"]}
    assert manager.get("/api/v1/audit-log/").status_code == 403


def test_current_organization_tells_the_caller_what_they_may_do(org_a, member):
    _user, client = member(org_a, "sales_rep")
    body = client.get("/api/v1/organizations/current/").json()
    assert body["role"] == "sales_rep"
    assert body["permissions"]["crm.lead.update"] == "own"
    assert "rbac.member.manage" not in body["permissions"]
    assert body["plan"] == "enterprise"


def test_organizations_list_only_mine(owner_a, org_a):
    body = client_for(owner_a).get("/api/v1/organizations/").json()
    assert [org["slug"] for org in body["results"]] == [org_a.slug]


def test_members_carry_their_users_id_which_owner_fields_take(as_owner_a, org_a, member):
    """A member row has the membership's id (for /members/{id}/) and the user as a person reference, whose id is
    what owner fields take."""
    user, _client = member(org_a, "sales_rep")
    rows = as_owner_a.get("/api/v1/members/?page_size=100").json()["results"]
    [row] = [row for row in rows if row["user"]["email"] == user.email]
    assert row["id"] == _member_id(org_a, user)
    assert row["user"] == {"id": user.pk, "email": user.email, "name": "Test User"}
    lead = as_owner_a.post("/api/v1/leads/", {"name": "Handed over"}, format="json").json()
    response = as_owner_a.patch(f"/api/v1/leads/{lead['id']}/", {"owner": row["user"]["id"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["owner"]["id"] == user.pk


def test_the_callers_role_in_each_organization(org_a, org_b, member):
    """/organizations/, /auth/me/ and the session answer of a sign-in all name the caller's role in each."""
    from rbac.services import membership_create

    from ..factories import DEFAULT_PASSWORD

    user, _client = member(org_a, "viewer")
    membership_create(user=user, organization=org_b, role="manager")
    expected = [("org-a", "viewer", "Viewer"), ("org-b", "manager", "Manager")]

    def roles(organizations):
        return [(o["slug"], o["role"]["key"], o["role"]["name"]) for o in organizations]

    person = client_for(user)
    assert roles(person.get("/api/v1/organizations/").json()["results"]) == expected
    assert roles(person.get("/api/v1/auth/me/").json()["organizations"]) == expected
    session = person.post("/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json")
    assert roles(session.json()["organizations"]) == expected


def test_removing_a_member_is_audited_and_applies_next_request(as_owner_a, org_a, owner_a, member):
    user, client = member(org_a, "viewer")
    assert client.get("/api/v1/organizations/current/").status_code == 200
    membership_id = _member_id(org_a, user)
    assert as_owner_a.delete(f"/api/v1/members/{membership_id}/").status_code == 204
    assert not Membership.objects.filter(pk=membership_id).exists()
    assert client.get("/api/v1/organizations/current/").status_code == 404
    entry = AuditEntry.objects.get(organization=org_a, action="membership.removed", target_id=membership_id)
    assert (entry.before["role"], entry.after, entry.actor_label) == ("viewer", None, owner_a.email)


def test_a_member_may_leave(org_a, member):
    user, client = member(org_a, "viewer")
    assert client.post("/api/v1/members/leave/").status_code == 204
    assert not Membership.objects.filter(organization=org_a, user=user).exists()
    assert client.get("/api/v1/organizations/current/").status_code == 404
    assert AuditEntry.objects.filter(organization=org_a, action="membership.left").exists()


def test_one_owner_of_two_may_be_demoted_not_both(as_owner_a, org_a, owner_a, member):
    second, second_client = member(org_a, "owner")
    admin = Role.objects.get(organization=None, key="admin")
    first_id, second_id = _member_id(org_a, owner_a), _member_id(org_a, second)
    assert as_owner_a.patch(f"/api/v1/members/{second_id}/", {"role": admin.pk}, format="json").status_code == 200
    response = as_owner_a.patch(f"/api/v1/members/{first_id}/", {"role": admin.pk}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "last_owner")
    # a deactivated owner does not count as the organization's owner
    Membership.objects.filter(pk=second_id).update(role=Role.objects.get(organization=None, key="owner"))
    assert as_owner_a.post(f"/api/v1/members/{second_id}/deactivate/").status_code == 200
    response = as_owner_a.post(f"/api/v1/members/{first_id}/deactivate/")
    assert (response.status_code, response.json()["code"]) == (409, "last_owner")


def test_transferring_ownership_to_oneself_or_an_inactive_member_is_refused(as_owner_a, org_a, owner_a, member):
    to_self = as_owner_a.post(
        "/api/v1/members/transfer-ownership/", {"to_member": _member_id(org_a, owner_a)}, format="json"
    )
    assert to_self.status_code == 400
    assert to_self.json()["errors"][0]["field"] == "to_member"
    user, _client = member(org_a, "admin")
    as_owner_a.post(f"/api/v1/members/{_member_id(org_a, user)}/deactivate/")
    inactive = as_owner_a.post(
        "/api/v1/members/transfer-ownership/", {"to_member": _member_id(org_a, user)}, format="json"
    )
    assert inactive.status_code == 400
    assert Membership.objects.get(organization=org_a, user=owner_a).role.key == "owner"


def test_transfer_ownership_is_audited(as_owner_a, org_a, owner_a, member):
    heir, _client = member(org_a, "viewer")
    as_owner_a.post("/api/v1/members/transfer-ownership/", {"to_member": _member_id(org_a, heir)}, format="json")
    changes = {
        entry.target_id: (entry.before["role"], entry.after["role"])
        for entry in AuditEntry.objects.filter(organization=org_a, action="membership.role_changed")
    }
    assert changes == {
        str(_member_id(org_a, heir)): ("viewer", "owner"),
        str(_member_id(org_a, owner_a)): ("owner", "admin"),
    }


def test_custom_role_delete_when_unused_and_rename_conflict(as_owner_a, org_a, member, unique_email):
    from rbac.services import invitation_create

    first = as_owner_a.post("/api/v1/roles/", {"name": "First", "grants": {}}, format="json").json()
    second = as_owner_a.post("/api/v1/roles/", {"name": "Second", "grants": {}}, format="json").json()
    clash = as_owner_a.patch(f"/api/v1/roles/{second['id']}/", {"name": "First"}, format="json")
    assert (clash.status_code, clash.json()["code"]) == (409, "conflict")
    # a pending invitation keeps a role in use, like a member does
    invitation, _token = invitation_create(
        organization=org_a, email=unique_email(), role=Role.objects.get(pk=first["id"]), actor=None
    )
    in_use = as_owner_a.delete(f"/api/v1/roles/{first['id']}/")
    assert (in_use.status_code, in_use.json()["code"]) == (409, "role_in_use")
    as_owner_a.post(f"/api/v1/invitations/{invitation.pk}/revoke/")
    assert as_owner_a.delete(f"/api/v1/roles/{first['id']}/").status_code == 204
    assert not Role.objects.filter(pk=first["id"]).exists()
    entry = AuditEntry.objects.get(organization=org_a, action="role.deleted", target_id=first["id"])
    assert entry.before["name"] == "First"
    system = Role.objects.get(organization=None, key="viewer")
    refused = as_owner_a.delete(f"/api/v1/roles/{system.pk}/")
    assert (refused.status_code, refused.json()["code"]) == (409, "system_role_read_only")


def test_custom_roles_of_another_organization_are_404(as_owner_a, org_b):
    foreign = Role.objects.create(organization=org_b, key="b-secret", name="B secret", grants={})
    assert as_owner_a.get(f"/api/v1/roles/{foreign.pk}/").status_code == 404
    assert as_owner_a.delete(f"/api/v1/roles/{foreign.pk}/").status_code == 404
    assert Role.objects.filter(pk=foreign.pk).exists()


# Who reads the audit trail: Owners and Admins only (written out by hand).
AUDIT_READERS = {"owner": 200, "admin": 200, "manager": 403, "sales_rep": 403, "support": 403, "viewer": 403}


@pytest.mark.parametrize(("role", "expected"), AUDIT_READERS.items())
def test_audit_log_by_role(org_a, member, role, expected):
    _user, client = member(org_a, role)
    response = client.get("/api/v1/audit-log/")
    assert response.status_code == expected
    if expected == 403:
        assert response.json()["code"] == "permission_denied"


def test_audit_log_records_who_what_when_before_after(as_owner_a, org_a, owner_a, member):
    from billing.services import subscription_change_plan

    user, _client = member(org_a, "viewer")
    manager = Role.objects.get(organization=None, key="manager")
    as_owner_a.patch(f"/api/v1/members/{_member_id(org_a, user)}/", {"role": manager.pk}, format="json")
    subscription_change_plan(organization=org_a, plan_code="pro", actor=owner_a)
    rows = as_owner_a.get("/api/v1/audit-log/").json()["results"]
    assert rows[0]["action"] == "subscription.plan_changed"  # newest first
    assert (rows[0]["before"]["plan"], rows[0]["after"]["plan"], rows[0]["actor"]) == (
        "enterprise",
        "pro",
        owner_a.email,
    )
    role_change = next(row for row in rows if row["action"] == "membership.role_changed")
    assert (role_change["before"]["role"], role_change["after"]["role"]) == ("viewer", "manager")
    assert role_change["target_type"] == "membership"
    assert role_change["created_at"]
    filtered = as_owner_a.get("/api/v1/audit-log/?target_type=subscription").json()["results"]
    assert {row["target_type"] for row in filtered} == {"subscription"}


@pytest.mark.parametrize(
    "url", ["/api/v1/members/", "/api/v1/roles/", "/api/v1/audit-log/", "/api/v1/billing/subscription/"]
)
def test_a_member_of_a_using_bs_header_learns_nothing(as_owner_a, owner_a, org_b, url):
    foreign = client_for(owner_a, org_b).get(url)
    unknown = client_for(owner_a).get(url, HTTP_X_ORGANIZATION="no-such-organization")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()
    assert as_owner_a.get(url).status_code == 200  # the same person, in their own organization


def test_an_api_key_cannot_make_its_creator_leave(org_a, owner_a, member, api):
    from identity.apikeys import apikey_create

    user, _client = member(org_a, "admin")
    _key, secret = apikey_create(
        organization=org_a, name="Zapier", scopes={"rbac.member.view": "all"}, actor=user, actor_grants=None
    )
    response = api.post("/api/v1/members/leave/", HTTP_X_API_KEY=secret)
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert Membership.objects.filter(organization=org_a, user=user, is_active=True).exists()
