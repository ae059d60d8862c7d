import uuid

from django.db import models


class OutboxEvent(models.Model):
    """A domain event, written in the same transaction as the change it describes.

    The relay (Celery) reads unrelayed rows and hands them to webhooks, timelines and analytics, so an
    event is never lost to a crash and never emitted for a change that rolled back.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=64, db_index=True)
    subject_type = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=64)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    payload = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    relayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "-occurred_at"], name="outbox_subject_idx"),
            models.Index(fields=["occurred_at"], condition=models.Q(relayed_at=None), name="outbox_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.subject_type}:{self.subject_id}"
