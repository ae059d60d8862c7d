"""E-mail, for every app: addresses compared as the product compares them, and plain-text messages sent by a task
after commit (``queue_after_commit(send_email_task, to=..., subject=..., body=...)``)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from .tasks import PublicTask


def normalize_email(email: str) -> str:
    """E-mail addresses are compared case-insensitively: store them trimmed and lower-cased."""
    return (email or "").strip().lower()


@shared_task(name="mail.send_email", base=PublicTask, autoretry_for=(OSError,))
def send_email_task(*, to: list[str], subject: str, body: str) -> int:
    """Send one plain-text e-mail; SMTP outages are retried with backoff."""
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
