"""Telling an organization's owners about its billing (payment failed, downgraded, a usage threshold reached).

Owners are memberships, which ``rbac`` owns above this layer: ``rbac`` registers the lookup when Django starts
(``RbacConfig.ready``), as it registers the audit trail's writer. Mail leaves after commit (:mod:`config.mail`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from config.mail import send_email_task
from config.tasks import queue_after_commit

OwnerEmails = Callable[[Any], list[str]]
_owner_emails: OwnerEmails | None = None


def register_owner_emails(lookup: OwnerEmails) -> None:
    global _owner_emails
    _owner_emails = lookup


def owner_emails(organization) -> list[str]:
    if _owner_emails is None:
        raise RuntimeError("billing has no owner lookup: rbac registers it when Django starts")
    return sorted(set(_owner_emails(organization)))


def email_owners(organization, *, subject: str, body: str) -> int:
    """Queue one e-mail to the organization's active owners once the transaction commits; how many owners."""
    to = owner_emails(organization)
    if to:
        body = f"{body}\n\n{settings.BILLING_RETURN_URL}\n"
        queue_after_commit(send_email_task, to=to, subject=f"{subject} — {organization.name}", body=body)
    return len(to)
