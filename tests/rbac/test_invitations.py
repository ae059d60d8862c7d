"""Invitations: e-mailed after commit through the Celery task, single use, expiring, revocable, resendable;
accepting signs up a new person or attaches an existing one."""

import re
from datetime import datetime, timedelta
from unittest.mock import ANY

import pytest
from django.core import mail
from django.utils import timezone

from identity.models import User
from rbac.choices import InvitationStatus
from rbac.models import AuditEntry, Invitation, Membership, Role

from ..conftest import client_for
from ..factories import DEFAULT_PASSWORD, make_user
from ..problems import field_error

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "A-long-enough-pass-123"


def _role(key: str) -> Role:
    return Role.objects.get(organization=None, key=key)


def _token_of(message) -> str:
    found = re.search(r"token=([\w-]+)", message.body)
    assert found, message.body
    return found.group(1)


@pytest.fixture
def invite(as_owner_a, django_capture_on_commit_callbacks):
    """``invite(email, role="viewer", client=owner)`` → (response, token or None), e-mails sent on commit."""

    def send(email, role="viewer", client=None):
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            response = (client or as_owner_a).post(
                "/api/v1/invitations/", {"email": email, "role": _role(role).pk}, format="json"
            )
        return response, (_token_of(mail.outbox[-1]) if mail.outbox else None)

    return send


def _accept(client, token, **fields):
    return client.post("/api/v1/invitations/accept/", {"token": token, **fields}, format="json")


def test_invitation_is_e_mailed_through_the_celery_task_after_commit(
    as_owner_a, org_a, unique_email, monkeypatch, django_capture_on_commit_callbacks
):
    from config import mail

    sent = []
    monkeypatch.setattr(mail.send_email_task, "apply_async", lambda args, kwargs, **options: sent.append(kwargs))
    email = unique_email("invitee")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_owner_a.post("/api/v1/invitations/", {"email": email, "role": _role("viewer").pk})
    assert response.status_code == 201, response.content
    assert sent == []  # nothing leaves the process before the transaction commits
    for callback in callbacks:
        callback()
    assert len(sent) == 1
    assert sent[0]["to"] == [email]
    assert "Org A" in sent[0]["subject"]
    assert "token=" in sent[0]["body"]
    body = response.json()
    assert (body["email"], body["role"]["key"], body["status"]) == (email, "viewer", "pending")
    assert "token" not in body  # the token travels by e-mail only
    stored = Invitation.objects.get(pk=body["id"])
    inviter = stored.invited_by  # a person reads {id, email, name} wherever it is referred to
    assert body["invited_by"] == {"id": inviter.pk, "email": inviter.email, "name": inviter.full_name}
    listed = as_owner_a.get("/api/v1/invitations/").json()["results"]
    assert [row["invited_by"] for row in listed] == [body["invited_by"]]
    assert stored.token_hash
    assert re.search(r"token=([\w-]+)", sent[0]["body"]).group(1) not in stored.token_hash


def test_accepting_signs_up_a_new_person(api, org_a, invite, unique_email):
    email = unique_email("new")
    response, token = invite(email, "sales_rep")
    assert response.status_code == 201
    assert mail.outbox[-1].to == [email]
    accepted = _accept(api, token, password=NEW_PASSWORD, first_name="Nina")
    assert accepted.status_code == 200, accepted.content
    session = accepted.json()
    assert session["user"]["email"] == email
    assert [org["slug"] for org in session["organizations"]] == [org_a.slug]
    membership = Membership.objects.get(organization=org_a, user__email=email)
    assert (membership.role.key, membership.is_active) == ("sales_rep", True)
    assert User.objects.get(email=email).check_password(NEW_PASSWORD)
    # the new session works against the organization at once
    client = api.__class__()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session['access']}", HTTP_X_ORGANIZATION=org_a.slug)
    assert client.get("/api/v1/organizations/current/").json()["role"] == "sales_rep"
    invitation = Invitation.objects.get(pk=response.json()["id"])
    assert invitation.status == InvitationStatus.ACCEPTED
    assert AuditEntry.objects.filter(organization=org_a, action="invitation.accepted", target_id=invitation.pk).exists()


def test_a_new_person_must_choose_a_password(api, invite, unique_email):
    _response, token = invite(unique_email())
    response = _accept(api, token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "password"


def test_accepting_attaches_an_existing_person_who_proves_it(api, org_a, org_b, invite):
    existing = make_user()
    _response, token = invite(existing.email, "manager")
    wrong = _accept(api, token, password="not-the-password-123")
    assert (wrong.status_code, wrong.json()["code"]) == (400, "invitation_invalid")
    assert not Membership.objects.filter(organization=org_a, user=existing).exists()
    response = _accept(api, token, password=DEFAULT_PASSWORD)
    assert response.status_code == 200, response.content
    assert User.objects.filter(email=existing.email).count() == 1
    assert Membership.objects.get(organization=org_a, user=existing).role.key == "manager"


def test_guessing_the_password_of_an_existing_person_hits_the_sign_in_lockout(api, org_a, invite, settings):
    settings.AUTH_LOCKOUT_MAX_FAILURES = 3
    existing = make_user()
    _response, token = invite(existing.email)
    codes = [_accept(api, token, password=f"guess-{i}-Password").json()["code"] for i in range(3)]
    assert codes == ["invitation_invalid", "invitation_invalid", "account_locked"]
    locked = _accept(api, token, password=DEFAULT_PASSWORD)  # even the right password waits out the lock
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) > 0
    assert not Membership.objects.filter(organization=org_a, user=existing).exists()


def test_a_signed_in_person_accepts_without_a_password(org_a, invite):
    existing = make_user()
    _response, token = invite(existing.email)
    response = _accept(client_for(existing), token)
    assert response.status_code == 200, response.content
    assert Membership.objects.filter(organization=org_a, user=existing, is_active=True).exists()


def test_signed_in_as_someone_else_is_refused(invite, owner_b):
    invited = make_user()
    _response, token = invite(invited.email)
    response = _accept(client_for(owner_b), token)
    assert (response.status_code, response.json()["code"]) == (400, "invitation_invalid")


def test_an_invitation_is_single_use(api, invite, unique_email):
    _response, token = invite(unique_email())
    assert _accept(api, token, password=NEW_PASSWORD).status_code == 200
    again = _accept(api, token, password=NEW_PASSWORD)
    assert (again.status_code, again.json()["code"]) == (400, "invitation_invalid")


def test_an_expired_invitation_cannot_be_accepted_and_reads_expired(as_owner_a, api, invite, unique_email):
    response, token = invite(unique_email())
    Invitation.objects.filter(pk=response.json()["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = _accept(api, token, password=NEW_PASSWORD)
    assert (refused.status_code, refused.json()["code"]) == (400, "invitation_invalid")
    listed = as_owner_a.get("/api/v1/invitations/?status=expired").json()["results"]
    assert [row["id"] for row in listed] == [response.json()["id"]]
    assert listed[0]["status"] == "expired"
    assert as_owner_a.get("/api/v1/invitations/?status=pending").json()["count"] == 0


def test_invitations_expire_after_seven_days(invite, unique_email):
    response, _token = invite(unique_email())
    expires = Invitation.objects.get(pk=response.json()["id"]).expires_at
    assert timedelta(days=6, hours=23) < expires - timezone.now() <= timedelta(days=7)


def test_a_revoked_invitation_cannot_be_accepted(as_owner_a, api, org_a, invite, unique_email):
    response, token = invite(unique_email())
    pk = response.json()["id"]
    revoked = as_owner_a.post(f"/api/v1/invitations/{pk}/revoke/")
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")
    refused = _accept(api, token, password=NEW_PASSWORD)
    assert (refused.status_code, refused.json()["code"]) == (400, "invitation_invalid")
    twice = as_owner_a.post(f"/api/v1/invitations/{pk}/revoke/")
    assert (twice.status_code, twice.json()["code"]) == (400, "invitation_invalid")
    entry = AuditEntry.objects.get(organization=org_a, action="invitation.revoked", target_id=pk)
    assert (entry.before["status"], entry.after["status"]) == ("pending", "revoked")


def test_resend_mails_a_new_token_and_the_old_one_stops_working(
    as_owner_a, api, invite, unique_email, django_capture_on_commit_callbacks
):
    email = unique_email()
    response, old_token = invite(email)
    pk = response.json()["id"]
    Invitation.objects.filter(pk=pk).update(expires_at=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        resent = as_owner_a.post(f"/api/v1/invitations/{pk}/resend/")
    assert resent.status_code == 200
    assert Invitation.objects.get(pk=pk).expires_at > timezone.now() + timedelta(days=6)
    assert mail.outbox[-1].to == [email]
    new_token = _token_of(mail.outbox[-1])
    assert new_token != old_token
    assert _accept(api, old_token, password=NEW_PASSWORD).json()["code"] == "invitation_invalid"
    assert _accept(api, new_token, password=NEW_PASSWORD).status_code == 200
    accepted = as_owner_a.post(f"/api/v1/invitations/{pk}/resend/")
    assert (accepted.status_code, accepted.json()["code"]) == (400, "invitation_invalid")


def test_inviting_a_member_or_a_pending_address_twice_is_a_conflict(invite, owner_a, unique_email):
    assert field_error(invite(owner_a.email)[0], status=409) == {
        "field": "email",
        "code": "already_member",
        "detail": ANY,
    }
    email = unique_email()
    assert invite(email)[0].status_code == 201
    again, _token = invite(email)
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def test_inviting_needs_member_manage_and_cannot_exceed_own_grants(org_a, member, invite, unique_email):
    _manager, manager = member(org_a, "manager")
    refused, _ = invite(unique_email(), client=manager)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    _admin, admin = member(org_a, "admin")
    assert invite(unique_email(), "manager", client=admin)[0].status_code == 201
    too_much, token = invite(unique_email(), "owner", client=admin)
    assert (too_much.status_code, too_much.json()["code"]) == (403, "grant_exceeds_own")
    assert token is None  # nothing was sent


def test_invitations_of_another_organization_are_404(as_owner_a, org_b, owner_b):
    from rbac.services import invitation_create

    invitation, _token = invitation_create(
        organization=org_b, email="someone@b.test", role=_role("viewer"), actor=owner_b
    )
    assert as_owner_a.get(f"/api/v1/invitations/{invitation.pk}/").status_code == 404
    assert as_owner_a.post(f"/api/v1/invitations/{invitation.pk}/revoke/").status_code == 404
    assert invitation.pk not in {row["id"] for row in as_owner_a.get("/api/v1/invitations/").json()["results"]}


def test_an_unknown_token_is_invalid(api):
    response = _accept(api, "nope-" * 8, password=NEW_PASSWORD)
    assert (response.status_code, response.json()["code"]) == (400, "invitation_invalid")


# --- looking at an invitation before accepting it (GET /invitations/accept/?token=) ---


def _look(client, token):
    return client.get("/api/v1/invitations/accept/", {"token": token})


def test_the_invitee_sees_the_organization_the_inviter_the_role_and_the_expiry(api, org_a, owner_a, invite):
    owner_a.first_name, owner_a.last_name = "Olga", "Owner"
    owner_a.save(update_fields=["first_name", "last_name"])
    response, token = invite("preview@example.test", "manager")

    looked = _look(api, token)

    assert looked.status_code == 200, looked.content
    invitation = Invitation.objects.get(pk=response.json()["id"])
    assert looked.json() == {
        "organization": {"name": "Org A", "logo_url": ""},
        "email": "preview@example.test",
        "inviter": {"id": owner_a.pk, "email": owner_a.email, "name": "Olga Owner"},
        "role": {"id": _role("manager").pk, "key": "manager", "name": "Manager"},
        "status": "pending",
        "expires_at": ANY,
    }
    assert looked.json()["expires_at"] == response.json()["expires_at"]
    assert datetime.fromisoformat(looked.json()["expires_at"]) == invitation.expires_at
    assert _accept(api, token, password=NEW_PASSWORD).status_code == 200  # looking did not use it up


def test_unknown_revoked_replaced_and_orphaned_tokens_are_the_same_404(
    as_owner_a, api, org_a, invite, unique_email, django_capture_on_commit_callbacks
):
    revoked_response, revoked = invite(unique_email())
    as_owner_a.post(f"/api/v1/invitations/{revoked_response.json()['id']}/revoke/")
    resent_response, replaced = invite(unique_email())
    with django_capture_on_commit_callbacks(execute=True):
        as_owner_a.post(f"/api/v1/invitations/{resent_response.json()['id']}/resend/")
    gone_org_response, orphaned = invite(unique_email())
    from tenants.models import Organization

    unknown = _look(api, "x" * 43)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "invitation_not_found")
    assert _look(api, revoked).content == unknown.content
    assert _look(api, replaced).content == unknown.content
    Organization.objects.filter(pk=org_a.pk).update(status="suspended")
    assert _look(api, orphaned).content == unknown.content


def test_expired_and_accepted_invitations_are_410_with_their_code(api, invite, unique_email):
    expired_response, expired = invite(unique_email())
    Invitation.objects.filter(pk=expired_response.json()["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    _accepted_response, accepted = invite(unique_email())
    assert _accept(api, accepted, password=NEW_PASSWORD).status_code == 200

    for token, code in [(expired, "invitation_expired"), (accepted, "invitation_accepted")]:
        response = _look(api, token)
        assert (response.status_code, response.json()["code"]) == (410, code)
        assert response["Content-Type"] == "application/problem+json"


def test_looking_needs_a_token(api):
    assert field_error(api.get("/api/v1/invitations/accept/"))["field"] == "token"


def test_looking_is_rate_limited_per_client(invite, unique_email):
    from rest_framework.test import APIClient

    _response, token = invite(unique_email())
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    statuses = [_look(client, token).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    assert _look(APIClient(REMOTE_ADDR="203.0.113.10"), token).status_code == 200
