"""Activities: notes, calls, e-mails, meetings and tasks attached to a contact, company, lead or deal."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from integrations import outbox
from rbac.actor import Actor, require_actor, user_of

from ..choices import ActivityKind
from ..errors import ActivityAlreadyCompleted, ActivityNotCompletable, ActivityTargetRequired
from ..models import Activity
from ._common import keep_in_reach

TARGETS = ("contact_id", "company_id", "lead_id", "deal_id")
COMPLETABLE = {ActivityKind.TASK, ActivityKind.MEETING}


@transaction.atomic
def activity_create(*, actor: Actor, kind: str, subject: str, **fields) -> Activity:
    """Log an activity. It is attached to at least one record (the API resolves the ids within the caller's
    reach); it belongs to the actor unless an owner is given."""
    require_actor(actor)
    fields.setdefault("owner_id", user_of(actor))
    for name in TARGETS:
        record = fields.pop(name.removesuffix("_id"), None)
        if record is not None:
            fields[name] = record.pk
    if not any(fields.get(name) for name in TARGETS):
        raise ActivityTargetRequired(field="contact")
    keep_in_reach(actor, "crm.activity.update", fields["owner_id"])
    activity = Activity.objects.create(kind=kind, subject=subject.strip(), **fields)
    outbox.record("activity.created", subject=activity, payload=outbox.snapshot(activity), actor=actor)
    return activity


@transaction.atomic
def activity_update(*, activity: Activity, actor: Actor, **fields) -> Activity:
    require_actor(actor)
    activity = Activity.objects.select_for_update().get(pk=activity.pk)
    if "subject" in fields:
        fields["subject"] = fields["subject"].strip()
    change = outbox.apply_changes(activity, fields)
    if any(name in change for name in TARGETS) and not any(getattr(activity, name) for name in TARGETS):
        raise ActivityTargetRequired(field="contact")
    if "owner_id" in change:
        keep_in_reach(actor, "crm.activity.update", activity.owner_id)
    if change:
        activity.save(update_fields=[*(Activity._meta.get_field(name).name for name in change), "updated_at"])
        outbox.record("activity.updated", subject=activity, payload={"id": activity.pk, "changes": change}, actor=actor)
    return activity


@transaction.atomic
def activity_delete(*, activity: Activity, actor: Actor) -> None:
    require_actor(actor)
    outbox.record("activity.deleted", subject=activity, payload=outbox.snapshot(activity), actor=actor)
    activity.delete()


@transaction.atomic
def activity_complete(*, activity: Activity, actor: Actor) -> Activity:
    """Mark a task or meeting done (409 ``activity_already_completed`` the second time)."""
    require_actor(actor)
    activity = Activity.objects.select_for_update().get(pk=activity.pk)
    if activity.kind not in COMPLETABLE:
        raise ActivityNotCompletable()
    if activity.completed_at is not None:
        raise ActivityAlreadyCompleted()
    activity.completed_at = timezone.now()
    activity.save(update_fields=["completed_at", "updated_at"])
    outbox.record(
        "activity.completed",
        subject=activity,
        payload={"id": activity.pk, "kind": activity.kind, "completed_at": activity.completed_at},
        actor=actor,
    )
    return activity
