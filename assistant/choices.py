from django.db import models


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    INTERRUPTED = "interrupted", "Interrupted (the client went away mid-answer)"
    FAILED = "failed", "Failed (the model could not answer)"


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed and done"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Confirmed, but refused by the service"


class Skill(models.TextChoices):
    CHAT = "chat", "Free conversation"
    SUMMARIZE = "summarize", "Summarize a record"
    TODAY = "today", "What should I do today"
    FOLLOW_UP = "follow_up", "Draft a follow-up e-mail from a record's timeline"
