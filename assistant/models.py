"""The co-pilot's data, in the organization's schema: conversations with their messages (each kept with the tool
calls made and the records used), the writes the model proposed, the month's usage, and the organization's own
model key (encrypted)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .choices import MessageRole, MessageStatus, ProposalStatus, Skill


def _user_field(**kwargs):
    return models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", **kwargs
    )


class Conversation(models.Model):
    """A conversation belongs to its author alone: no role, an Owner's included, reads another's."""

    author = _user_field()
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["author", "-updated_at"], name="conversation_author_idx")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField(blank=True)
    skill = models.CharField(max_length=16, choices=Skill.choices, default=Skill.CHAT)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    error_code = models.CharField(max_length=64, blank=True)
    #: ``[{id, name, arguments, ok, code?}]``: every tool the model called for this answer.
    tool_calls = models.JSONField(default=list, blank=True)
    #: ``[{type, id, name}]``: the records the answer used.
    references = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"


class Proposal(models.Model):
    """A write the model asked for. Nothing happens until the author confirms it; it then runs as the author."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="proposals")
    message = models.ForeignKey(Message, null=True, on_delete=models.SET_NULL, related_name="proposals")
    tool = models.CharField(max_length=64)
    arguments = models.JSONField(default=dict)
    summary = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.summary


class MonthlyUsage(models.Model):
    """Tokens of one calendar month (UTC). Messages are counted by billing's meter (``billing.metering``), which
    the plan's ``copilot_messages_per_month`` reads; deleting a conversation gives none back."""

    month = models.DateField(unique=True, help_text="First day of the month (UTC).")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.prompt_tokens} + {self.completion_tokens} tokens"


class ModelSettings(models.Model):
    """The organization's own model access (one row at most): its key, encrypted at rest, never answered back."""

    api_key_encrypted = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "Model settings"
