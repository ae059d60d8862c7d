"""Writes of campaigns: segments, the consent ledger, campaigns and their lifecycle. Keyword-only, atomic; each
change a customer cares about records its event in the outbox in the same transaction. ``actor`` is the caller's
:class:`rbac.access.Access`, or a :class:`rbac.actor.SystemActor` (tasks, provider callbacks, unsubscribe links).

Sending itself is :mod:`crm.campaigns.sending`; docs/decisions/0012-campaigns.md explains the rules."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.features import Limit
from billing.services import enforce_limit
from config.api.errors import ValidationFailed
from config.db import connection
from config.tasks import queue_after_commit
from crm.records import UNSET, given
from integrations import outbox
from rbac.access import Access
from rbac.actor import Actor, SystemActor, actor_identity, require_actor, user_of
from tenants.selectors import current_organization

from . import channels, selectors
from .choices import (
    EDITABLE,
    FINISHED,
    CampaignStatus,
    Channel,
    ConsentSource,
    ConsentStatus,
    DeliveryStatus,
    SegmentKind,
    SkipReason,
    SuppressionReason,
)
from .errors import (
    CampaignFinished,
    CampaignNotEditable,
    EmptySegment,
    InvalidCampaignTransition,
    NoTestAddress,
    SegmentInUse,
    SegmentNotStatic,
)
from .models import Campaign, ConsentEvent, ConsentState, Delivery, Segment, SegmentMember, Suppression
from .templates import compile_template

#: The system actors of campaigns: sending (tasks), what recipients and providers tell us (links, callbacks).
SENDING = SystemActor("campaign sending")
RECIPIENT = SystemActor("campaign recipient")
PROVIDER = SystemActor("message provider")

# --- segments ---


def _reachable_ids(actor: Actor, ids: list[int]) -> list[int]:
    """``ids``, each a contact within the actor's reach; 400 ``bulk_failed`` naming every other one."""
    wanted = list(dict.fromkeys(ids))
    found = set(selectors.contacts_within(actor).filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        from config.api.errors import DomainError

        raise DomainError(
            "Some contacts do not exist or are outside your reach; nothing changed.",
            code="bulk_failed",
            extra={
                "errors": [
                    {"field": "contacts", "id": pk, "code": "not_found", "detail": "No such contact."} for pk in missing
                ]
            },
        )
    return wanted


@transaction.atomic
def segment_create(
    *, actor: Actor, name: str, kind: str, filters: dict | None = None, contacts: list[int] | None = None
) -> Segment:
    require_actor(actor)
    if kind == SegmentKind.DYNAMIC:
        selectors.check_filters(filters or {})
    elif filters:
        raise ValidationFailed("A static segment lists contacts; it has no filters.", field="filters", code="invalid")
    if kind == SegmentKind.DYNAMIC and contacts:
        raise SegmentNotStatic(field="contacts")
    user_id, _label = actor_identity(actor)
    segment = Segment.objects.create(name=name, kind=kind, filters=filters or {}, created_by_id=user_id)
    if contacts:
        segment_add_contacts(segment=segment, actor=actor, ids=contacts)
    return segment


@transaction.atomic
def segment_update(
    *, segment: Segment, actor: Actor, name: str = UNSET, filters: dict[str, Any] | None = UNSET
) -> Segment:
    require_actor(actor)
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    fields = given(name=name, filters=filters)
    if "filters" in fields:
        if segment.kind != SegmentKind.DYNAMIC:
            raise SegmentNotStatic("Only dynamic segments have filters.", field="filters")
        selectors.check_filters(fields["filters"] or {})
    changed = outbox.apply_changes(segment, fields)
    if changed:
        segment.save(update_fields=[*changed, "updated_at"])
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment, actor: Actor) -> None:
    require_actor(actor)
    if Campaign.objects.filter(segment=segment).exists():
        raise SegmentInUse()
    segment.delete()


@transaction.atomic
def segment_add_contacts(*, segment: Segment, actor: Actor, ids: list[int]) -> int:
    require_actor(actor)
    if segment.kind != SegmentKind.STATIC:
        raise SegmentNotStatic()
    wanted = _reachable_ids(actor, ids)
    created = SegmentMember.objects.bulk_create(
        [SegmentMember(segment=segment, contact_id=pk) for pk in wanted], ignore_conflicts=True
    )
    Segment.objects.filter(pk=segment.pk).update(updated_at=timezone.now())
    return len(created)


@transaction.atomic
def segment_remove_contacts(*, segment: Segment, actor: Actor, ids: list[int]) -> int:
    require_actor(actor)
    if segment.kind != SegmentKind.STATIC:
        raise SegmentNotStatic()
    wanted = _reachable_ids(actor, ids)
    removed, _ = SegmentMember.objects.filter(segment=segment, contact_id__in=wanted).delete()
    return removed


# --- consent ---

_CONSENT_EVENTS = {ConsentStatus.OPTED_IN: "contact.subscribed", ConsentStatus.OPTED_OUT: "contact.unsubscribed"}


@transaction.atomic
def consent_record(
    *,
    contact,
    channel: str,
    status: str,
    source: str,
    actor: Actor,
    proof: str = "",
    campaign_id: int | None = None,
) -> ConsentEvent:
    """Append to the ledger and make it the contact's current consent on ``channel`` at once: every message
    claimed after this commit sees it. An opt-out also marks the campaign's message to the contact unsubscribed."""
    require_actor(actor)
    user_id, label = actor_identity(actor)
    now = timezone.now()
    event = ConsentEvent.objects.create(
        contact=contact,
        channel=channel,
        status=status,
        source=source,
        proof=proof[:5000],
        campaign_id=campaign_id,
        actor_id=user_id,
        actor_label=label,
    )
    ConsentState.objects.update_or_create(
        contact=contact, channel=channel, defaults={"status": status, "source": source, "updated_at": now}
    )
    if status == ConsentStatus.OPTED_OUT and campaign_id is not None:
        Delivery.objects.filter(campaign_id=campaign_id, contact=contact, unsubscribed_at=None).update(
            unsubscribed_at=now
        )
    outbox.record(
        _CONSENT_EVENTS[ConsentStatus(status)],
        subject=contact,
        actor=actor,
        payload={"id": contact.pk, "channel": channel, "source": source, "campaign": campaign_id},
    )
    return event


def suppression_add(*, channel: str, address: str, reason: str, detail: str = "", delivery_id: int | None = None):
    """No message goes to ``address`` on ``channel`` again (idempotent)."""
    address = channels.normalize_address(channel, address)
    if not address:
        return None
    suppression, _created = Suppression.objects.get_or_create(
        channel=channel,
        address=address,
        defaults={"reason": reason, "detail": detail[:500], "delivery_id": delivery_id},
    )
    return suppression


@transaction.atomic
def suppression_remove(*, suppression: Suppression, actor: Actor) -> None:
    """Messages may go to the address again (someone fixed the mailbox)."""
    require_actor(actor)
    suppression.delete()


# --- campaigns ---


def _check_templates(channel: str, subject: str, body: str) -> None:
    if channel == Channel.EMAIL:
        compile_template(subject, field="subject")
    compile_template(body, field="body")


def _snapshot(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "channel": campaign.channel,
        "status": campaign.status,
        "segment": campaign.segment_id,
        "scheduled_at": campaign.scheduled_at,
        "recipients": campaign.recipients,
    }


@transaction.atomic
def campaign_create(
    *, actor: Actor, name: str, channel: str, segment: Segment, body: str, subject: str = ""
) -> Campaign:
    require_actor(actor)
    if channel == Channel.EMAIL and not subject:
        raise ValidationFailed("An e-mail campaign needs a subject.", field="subject", code="required")
    _check_templates(channel, subject, body)
    user_id, _label = actor_identity(actor)
    return Campaign.objects.create(
        name=name, channel=channel, segment=segment, subject=subject, body=body, created_by_id=user_id
    )


def _locked(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_for_update().get(pk=campaign.pk)


@transaction.atomic
def campaign_update(
    *,
    campaign: Campaign,
    actor: Actor,
    name: str = UNSET,
    segment: Segment = UNSET,
    subject: str = UNSET,
    body: str = UNSET,
) -> Campaign:
    """Edit a draft or scheduled campaign; a sending, paused or finished one is 409 ``campaign_not_editable``."""
    require_actor(actor)
    fields = given(name=name, segment=segment, subject=subject, body=body)
    campaign = _locked(campaign)
    if campaign.status not in EDITABLE:
        raise CampaignNotEditable()
    channel = fields.get("channel", campaign.channel)
    _check_templates(channel, fields.get("subject", campaign.subject), fields.get("body", campaign.body))
    if channel == Channel.EMAIL and not fields.get("subject", campaign.subject):
        raise ValidationFailed("An e-mail campaign needs a subject.", field="subject", code="required")
    changed = outbox.apply_changes(campaign, fields)
    if changed:
        campaign.save(update_fields=[*changed, "updated_at"])
    return campaign


@transaction.atomic
def campaign_delete(*, campaign: Campaign, actor: Actor) -> None:
    require_actor(actor)
    campaign = _locked(campaign)
    if campaign.status in (CampaignStatus.SENDING, CampaignStatus.PAUSED):
        raise CampaignNotEditable("Cancel the campaign before deleting it.")
    campaign.delete()


def _local(value: datetime.datetime, zone) -> datetime.datetime:
    return value if timezone.is_aware(value) else value.replace(tzinfo=zone)


@transaction.atomic
def campaign_schedule(
    *,
    campaign: Campaign,
    actor: Actor,
    scheduled_at: datetime.datetime | None = None,
    window_days: list[int] | None = None,
    window_start: datetime.time | None = None,
    window_end: datetime.time | None = None,
) -> Campaign:
    """Schedule now (``scheduled_at`` omitted) or at a time; a time without an offset is in the organization's
    time zone, and so is the send window. The audience is the segment within the scheduler's reach, kept with
    the campaign and applied when it starts. 409 ``empty_segment`` when nobody would be sent to; 403
    ``plan_limit_reached`` when the month's messages would pass the plan's limit."""
    require_actor(actor)
    campaign = _locked(campaign)
    if campaign.status in FINISHED:
        raise CampaignFinished()
    if campaign.status not in EDITABLE:
        raise InvalidCampaignTransition(f"A {campaign.status} campaign cannot be scheduled; pause or resume it.")
    channels.require_configured(campaign.channel)
    _check_templates(campaign.channel, campaign.subject, campaign.body)
    organization = current_organization()
    zone = selectors.organization_time_zone(organization)
    reach = selectors.reach_of(actor) if isinstance(actor, Access) else selectors.StoredReach("all", None)
    count = selectors.audience(campaign.segment, reach).count()
    if count == 0:
        raise EmptySegment()
    enforce_limit(organization=organization, limit=Limit.CAMPAIGN_MESSAGES_PER_MONTH, adding=count)
    user_id, _label = actor_identity(actor)
    now = timezone.now()
    campaign.scheduled_at = _local(scheduled_at, zone) if scheduled_at else now
    campaign.window_days = sorted(set(window_days or []))
    campaign.window_start, campaign.window_end = window_start, window_end
    campaign.time_zone = str(zone.key)
    campaign.audience_scope, campaign.audience_user_id = reach.contact_scope, reach.user_id
    campaign.scheduled_by_id = user_id
    campaign.recipients = count
    campaign.status = CampaignStatus.SCHEDULED
    campaign.save()
    outbox.record("campaign.scheduled", subject=campaign, actor=actor, payload=_snapshot(campaign))
    if campaign.scheduled_at <= now:
        _start_after_commit(campaign.pk)
    return campaign


def _start_after_commit(campaign_id: int) -> None:
    """Start the campaign once the transaction commits (without a broker, the beat tick starts due campaigns)."""
    from .tasks import campaign_start_task

    queue_after_commit(campaign_start_task, campaign_id)


def runners_after_commit(campaign_id: int) -> None:
    """Queue the campaign's runners once the transaction commits (the beat tick wakes a campaign left idle)."""
    from .tasks import campaign_run_task

    for _ in range(max(1, settings.CAMPAIGN_RUNNERS)):
        queue_after_commit(campaign_run_task, campaign_id)


def _materialize(campaign: Campaign) -> int:
    """One queued delivery per contact of the audience, within the stored reach, in one statement; a contact
    that has one already keeps it (a start run again adds nothing)."""
    reach = selectors.StoredReach(campaign.audience_scope, campaign.audience_user_id)
    audience_sql, params = selectors.audience(campaign.segment, reach).order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Delivery._meta.db_table}
                (uuid, campaign_id, contact_id, channel, address, status, skip_reason, attempts,
                 provider_message_id, error, created_at)
            SELECT gen_random_uuid(), %s, audience.id, %s, '', %s, '', 0, '', '', now()
            FROM ({audience_sql}) AS audience (id)
            ON CONFLICT (campaign_id, contact_id) DO NOTHING
            """,
            [campaign.pk, campaign.channel, DeliveryStatus.QUEUED, *params],
        )
    return Delivery.objects.filter(campaign=campaign).count()


@transaction.atomic
def campaign_start(*, campaign_id: int, now: datetime.datetime | None = None) -> Campaign | None:
    """A scheduled campaign whose time has come starts sending: its audience is evaluated now (with the
    scheduler's stored reach) into one queued delivery per contact. Run by a task; idempotent."""
    now = now or timezone.now()
    campaign = Campaign.objects.select_for_update().select_related("segment").filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SCHEDULED:
        return None
    if campaign.scheduled_at is None or campaign.scheduled_at > now:
        return None
    campaign.recipients = _materialize(campaign)
    campaign.status = CampaignStatus.SENDING
    campaign.started_at = campaign.started_at or now
    campaign.save(update_fields=["recipients", "status", "started_at", "updated_at"])
    outbox.record("campaign.started", subject=campaign, actor=SENDING, payload=_snapshot(campaign))
    if campaign.recipients == 0:
        return campaign_complete_if_done(campaign_id=campaign.pk)
    runners_after_commit(campaign.pk)
    return campaign


@transaction.atomic
def campaign_complete_if_done(*, campaign_id: int) -> Campaign | None:
    """A sending campaign with no delivery left queued or in flight is completed (``campaign.completed``)."""
    campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return campaign
    if Delivery.objects.filter(
        campaign_id=campaign_id, status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
    ).exists():
        return campaign
    campaign.status, campaign.finished_at = CampaignStatus.COMPLETED, timezone.now()
    campaign.save(update_fields=["status", "finished_at", "updated_at"])
    stats = selectors.campaign_stats(campaign)
    payload = _snapshot(campaign) | {
        name: stats[name] for name in ("sent", "delivered", "bounced", "failed", "skipped", "unsubscribed")
    }
    outbox.record("campaign.completed", subject=campaign, actor=SENDING, payload=payload)
    return campaign


@transaction.atomic
def campaign_pause(*, campaign: Campaign, actor: Actor, reason: str = "") -> Campaign:
    """Stop sending after the messages in flight; queued ones wait for :func:`campaign_resume`."""
    require_actor(actor)
    campaign = _locked(campaign)
    if campaign.status in FINISHED:
        raise CampaignFinished()
    if campaign.status not in (CampaignStatus.SENDING, CampaignStatus.SCHEDULED):
        raise InvalidCampaignTransition(f"A {campaign.status} campaign cannot be paused.")
    campaign.status, campaign.paused_reason = CampaignStatus.PAUSED, reason
    campaign.save(update_fields=["status", "paused_reason", "updated_at"])
    outbox.record("campaign.paused", subject=campaign, actor=actor, payload=_snapshot(campaign) | {"reason": reason})
    return campaign


@transaction.atomic
def campaign_resume(*, campaign: Campaign, actor: Actor) -> Campaign:
    require_actor(actor)
    campaign = _locked(campaign)
    if campaign.status in FINISHED:
        raise CampaignFinished()
    if campaign.status != CampaignStatus.PAUSED:
        raise InvalidCampaignTransition(f"A {campaign.status} campaign cannot be resumed.")
    organization = current_organization()
    if campaign.started_at is None:  # paused before it started
        campaign.status = CampaignStatus.SCHEDULED
        if campaign.scheduled_at is not None and campaign.scheduled_at <= timezone.now():
            _start_after_commit(campaign.pk)
    else:
        left = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).count()
        enforce_limit(organization=organization, limit=Limit.CAMPAIGN_MESSAGES_PER_MONTH, adding=left)
        campaign.status = CampaignStatus.SENDING
        runners_after_commit(campaign.pk)
    campaign.paused_reason = ""
    campaign.save(update_fields=["status", "paused_reason", "updated_at"])
    outbox.record("campaign.resumed", subject=campaign, actor=actor, payload=_snapshot(campaign))
    return campaign


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, actor: Actor) -> Campaign:
    """Nothing more is sent: queued messages are skipped (``canceled``); those in flight finish."""
    require_actor(actor)
    campaign = _locked(campaign)
    if campaign.status in FINISHED:
        raise CampaignFinished()
    now = timezone.now()
    Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.SKIPPED, skip_reason=SkipReason.CANCELED, claim_token=None
    )
    campaign.status, campaign.finished_at = CampaignStatus.CANCELED, now
    campaign.save(update_fields=["status", "finished_at", "updated_at"])
    outbox.record("campaign.canceled", subject=campaign, actor=actor, payload=_snapshot(campaign))
    return campaign


def campaign_preview(*, campaign: Campaign, contact=None) -> dict[str, str]:
    """The campaign's subject and body as ``contact`` would get them (sample values without a contact)."""
    context = channels.render_context(
        organization=current_organization(), contact=contact, channel=campaign.channel, campaign_id=campaign.pk
    )
    subject = compile_template(campaign.subject, field="subject").render(context) if campaign.subject else ""
    return {"subject": subject, "body": compile_template(campaign.body, field="body").render(context)}


def campaign_test_send(*, campaign: Campaign, actor: Actor, contact=None, to: str = "") -> dict[str, str]:
    """Send the campaign, rendered for ``contact`` (or sample values), once to the caller: their own e-mail
    address, or for SMS and WhatsApp the number given. Nothing is recorded."""
    require_actor(actor)
    channels.require_configured(campaign.channel)
    if campaign.channel == Channel.EMAIL:
        from identity.models import User

        user_id = user_of(actor)
        to = (User.objects.filter(pk=user_id).values_list("email", flat=True).first() or "") if user_id else ""
    if not to:
        raise NoTestAddress(field="to")
    rendered = campaign_preview(campaign=campaign, contact=contact)
    channels.send_test(
        organization=current_organization(),
        channel=campaign.channel,
        to=to,
        subject=rendered["subject"],
        body=rendered["body"],
    )
    return {"to": to, **rendered}


# --- what providers and recipients tell us ---


def unsubscribe(*, contact_id: int, channel: str, campaign_id: int | None, source: str, proof: str) -> bool:
    """The recipient opted out (link, one-click, STOP, provider): recorded at once; False for an unknown
    contact. Opting out twice records once."""
    from crm.models import Contact

    with transaction.atomic():
        contact = Contact.objects.select_for_update().filter(pk=contact_id).first()
        if contact is None:
            return False
        state = ConsentState.objects.filter(contact=contact, channel=channel).first()
        if state is not None and state.status == ConsentStatus.OPTED_OUT:
            if campaign_id is not None:
                Delivery.objects.filter(campaign_id=campaign_id, contact=contact, unsubscribed_at=None).update(
                    unsubscribed_at=timezone.now()
                )
            return True
        consent_record(
            contact=contact,
            channel=channel,
            status=ConsentStatus.OPTED_OUT,
            source=source,
            actor=RECIPIENT,
            proof=proof,
            campaign_id=campaign_id,
        )
    return True


def delivery_bounced(*, delivery: Delivery, description: str, hard: bool, complaint: bool = False) -> None:
    """A bounce or complaint: the delivery is bounced, the address suppressed (hard bounces and complaints),
    a complaint also opts the contact out; ``delivery.bounced`` is recorded."""
    with transaction.atomic():
        now = timezone.now()
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.BOUNCED, bounced_at=now, error=description[:500]
        )
        if hard or complaint:
            reason = SuppressionReason.COMPLAINT if complaint else SuppressionReason.HARD_BOUNCE
            try:
                with transaction.atomic():
                    suppression_add(
                        channel=delivery.channel,
                        address=delivery.address,
                        reason=reason,
                        detail=description,
                        delivery_id=delivery.pk,
                    )
            except IntegrityError:
                pass  # suppressed concurrently
        outbox.record(
            "delivery.bounced",
            subject=delivery,
            actor=PROVIDER,
            payload={
                "id": delivery.pk,
                "campaign": delivery.campaign_id,
                "contact": delivery.contact_id,
                "channel": delivery.channel,
                "address": delivery.address,
                "kind": "complaint" if complaint else ("hard" if hard else "soft"),
                "description": description[:500],
            },
        )
    if complaint and delivery.contact_id is not None:
        unsubscribe(
            contact_id=delivery.contact_id,
            channel=delivery.channel,
            campaign_id=delivery.campaign_id,
            source=ConsentSource.COMPLAINT,
            proof=description,
        )
