"""A broker outage after commit never turns a committed write into a 500 (config/tasks.py, queue_after_commit).

Each request runs on a connection of its own (``committed``), so its transaction really commits and the
after-commit hook that queues the task runs inside the request, as in production; the broker is unreachable
(its breaker open, tasks not eager). The write stands, the answer is the usual one, and what the message was
for is recorded where it matters (an import that could not start is marked failed, not left queued forever).
"""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from config.breaker import breaker_for
from config.celery import app
from config.mail import send_email_task
from config.tasks import MissingTenantError, queue_after_commit
from crm.choices import ImportStatus
from crm.models import ImportJob
from identity.models import OneTimeCode, User
from integrations.tasks import outbox_relay_task
from rbac.models import AuditEntry, Invitation, Role

from ..conftest import client_for, committed
from ..crm.fixtures.transfer import csv_bytes, upload
from ..factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down():
    broker = breaker_for(app.conf.broker_url)
    app.conf.task_always_eager = False
    broker.failed("broker")
    yield
    app.conf.task_always_eager = True
    broker.reset()


def test_a_password_reset_is_accepted_while_the_broker_is_down(broker_down, unique_email):
    email = unique_email("reset")
    user = committed(make_user, email=email)
    try:
        response = committed(lambda: APIClient().post("/api/v1/auth/password/reset/", {"email": email}))
        assert response.status_code == 202
        assert committed(lambda: OneTimeCode.objects.filter(user=user).count()) == 1  # the code was committed
    finally:
        committed(lambda: User.objects.filter(pk=user.pk).delete())


def test_an_invitation_is_created_while_the_broker_is_down(broker_down, owner_a, org_a, unique_email):
    viewer = Role.objects.get(organization=None, key="viewer")
    email = unique_email("invitee")
    client = client_for(owner_a, org_a)
    response = committed(lambda: client.post("/api/v1/invitations/", {"email": email, "role": viewer.pk}))
    try:
        assert response.status_code == 201, response.content
        assert committed(lambda: Invitation.objects.filter(email=email).count()) == 1
    finally:
        invitations = Invitation.objects.filter(email=email)
        audit = AuditEntry.objects.filter(target_type="invitation", target_id=str(response.json().get("id")))
        committed(lambda: (audit.delete(), invitations.delete()))


def test_an_import_that_cannot_be_queued_is_failed_not_left_waiting(broker_down, owner_a, org_a, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    content = csv_bytes([["first_name", "email"], ["Ada", "ada-broker@example.test"]])
    client = client_for(owner_a, org_a)
    response = committed(lambda: upload(client, content))
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]

    def job_then_delete():
        connection.set_tenant(org_a)
        job = ImportJob.objects.get(pk=job_id)
        job.delete()
        return job

    job = committed(job_then_delete)
    assert job.status == ImportStatus.FAILED
    assert "could not be started" in job.failure_reason


def test_the_task_is_queued_after_the_commit_not_before(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(send_email_task, "apply_async", lambda args, kwargs, **options: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        queue_after_commit(send_email_task, to=["a@example.test"], subject="s", body="b")
        assert sent == []
    assert sent == [{"to": ["a@example.test"], "subject": "s", "body": "b"}]


def test_a_tenant_task_queued_from_public_fails_inside_the_transaction():
    with pytest.raises(MissingTenantError, match="queued from the public schema"):
        queue_after_commit(outbox_relay_task)
