"""Activities: notes, calls, e-mails, meetings and tasks attached to a contact, company, lead or deal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations import outbox
from rbac.actor import Actor, keep_in_reach, require_actor

from ..choices import ActivityKind
from ..errors import ActivityAlreadyCompleted, ActivityNotCompletable, ActivityTargetRequired
from ..models import Activity
from ..permissions import ACTIVITY_UPDATE
from ..records import UNSET, given, owner_for, record_event, record_update

TARGETS = ("contact_id", "company_id", "lead_id", "deal_id")
COMPLETABLE = {ActivityKind.TASK, ActivityKind.MEETING}


def _check_targets(activity: Activity, changes: dict[str, Any]) -> None:
    if any(name in changes for name in TARGETS) and not any(getattr(activity, name) for name in TARGETS):
        raise ActivityTargetRequired(field="contact")


@transaction.atomic
def activity_create(
    *,
    actor: Actor,
    kind: str,
    subject: str,
    body: str = UNSET,
    due_at: datetime | None = UNSET,
    owner_id: int | None = UNSET,
    contact_id: int | None = UNSET,
    company_id: int | None = UNSET,
    lead_id: int | None = UNSET,
    deal_id: int | None = UNSET,
) -> Activity:
    """Log an activity. It is attached to at least one record (the API resolves the ids within the caller's
    reach); it belongs to the actor unless an owner is given."""
    require_actor(actor)
    targets = given(contact_id=contact_id, company_id=company_id, lead_id=lead_id, deal_id=deal_id)
    if not any(targets.values()):
        raise ActivityTargetRequired(field="contact")
    owner = owner_for(actor, owner_id)
    keep_in_reach(actor, ACTIVITY_UPDATE, owner)
    activity = Activity.objects.create(
        kind=kind, subject=subject.strip(), owner_id=owner, **given(body=body, due_at=due_at), **targets
    )
    record_event("created", activity, actor=actor)
    return activity


@transaction.atomic
def activity_update(
    *,
    activity: Activity,
    actor: Actor,
    subject: str = UNSET,
    body: str = UNSET,
    due_at: datetime | None = UNSET,
    owner_id: int | None = UNSET,
    contact_id: int | None = UNSET,
    company_id: int | None = UNSET,
    lead_id: int | None = UNSET,
    deal_id: int | None = UNSET,
) -> Activity:
    """Edit an activity; its kind is fixed, and it stays attached to at least one record."""
    require_actor(actor)
    activity = Activity.objects.select_for_update().get(pk=activity.pk)
    fields = given(
        subject=subject if subject is UNSET else subject.strip(),
        body=body,
        due_at=due_at,
        owner_id=owner_id,
        contact_id=contact_id,
        company_id=company_id,
        lead_id=lead_id,
        deal_id=deal_id,
    )
    changes = record_update(activity, actor=actor, permission=ACTIVITY_UPDATE, fields=fields, check=_check_targets)
    record_event("updated", activity, actor=actor, changes=changes)
    return activity


@transaction.atomic
def activity_delete(*, activity: Activity, actor: Actor) -> None:
    require_actor(actor)
    record_event("deleted", activity, actor=actor)
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
