"""The co-pilot's reads."""

from __future__ import annotations

import datetime

from django.db.models import QuerySet
from django.utils import timezone

from rbac.access import Access

from . import secrets
from .models import Conversation, Message, ModelSettings, MonthlyUsage, Proposal


def month_start(now: datetime.datetime | None = None) -> datetime.date:
    """The first day of the calendar month (UTC) the co-pilot's limit counts in."""
    return (now or timezone.now()).astimezone(datetime.UTC).date().replace(day=1)


def conversations_of(actor: Access) -> QuerySet[Conversation]:
    """The caller's own conversations: private, whatever his role."""
    if actor.user_id is None:
        return Conversation.objects.none()
    return Conversation.objects.filter(author_id=actor.user_id)


def messages_of(conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(conversation=conversation).order_by("pk")


def proposals_of(conversation: Conversation) -> QuerySet[Proposal]:
    return Proposal.objects.filter(conversation=conversation).order_by("pk")


def usage_this_month() -> MonthlyUsage:
    return MonthlyUsage.objects.filter(month=month_start()).first() or MonthlyUsage(month=month_start())


def model_settings() -> ModelSettings | None:
    return ModelSettings.objects.first()


def own_key() -> tuple[str | None, str]:
    """The organization's own key (decrypted) and model, when it stored one and the key still decrypts."""
    row = model_settings()
    if row is None or not row.api_key_encrypted:
        return None, ""
    return secrets.decrypt(row.api_key_encrypted), row.model
