from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from config.tasks import PublicTask


@shared_task(name="identity.send_email", base=PublicTask, autoretry_for=(OSError,))
def send_email_task(*, to: list[str], subject: str, body: str) -> int:
    """Send one plain-text e-mail; SMTP outages are retried with backoff."""
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
