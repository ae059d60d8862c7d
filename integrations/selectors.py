from django.db.models import QuerySet

from .models import OutboxEvent


def events_about(*, subject_type: str, subject_id) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(subject_type=subject_type, subject_id=str(subject_id))
