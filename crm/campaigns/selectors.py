"""Reads of campaigns: audiences within a reach, consent, statistics, the usage counter, timeline rows."""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import CharField, Count, F, Q, QuerySet, Value
from django.db.models.functions import Cast, Trunc
from django.http import QueryDict
from django.utils import timezone
from django_tenants.utils import schema_context

from config.db import connection
from crm import timeline
from crm.models import Contact
from crm.permissions import CAMPAIGN_VIEW, CONTACT_VIEW
from rbac.access import Access
from rbac.actor import SystemActor

from .choices import ConsentStatus, DeliveryStatus, SegmentKind, SkipReason
from .errors import InvalidSegmentFilters
from .models import Campaign, ConsentEvent, ConsentState, Delivery, Segment, SegmentMember, Suppression

# --- reach ---


@dataclass(frozen=True)
class StoredReach:
    """A reach kept on a campaign (the scheduler's scope on contacts when scheduling), applied by the same
    ``visible_to`` as a live :class:`rbac.access.Access`."""

    contact_scope: str
    user_id: int | None

    def scope(self, permission: str) -> str | None:
        return self.contact_scope if permission == CONTACT_VIEW else None


Reach = Access | StoredReach | SystemActor


def reach_of(actor: Access) -> StoredReach:
    return StoredReach(contact_scope=actor.scope(CONTACT_VIEW) or "", user_id=actor.user_id)


def contacts_within(reach: Reach) -> QuerySet[Contact]:
    """The contacts ``reach`` may see (the system: every contact)."""
    return Contact.objects.visible_to(reach, CONTACT_VIEW)


# --- segments ---


def _filterset_class():
    from crm.api.filters import ContactFilter  # the contacts list's filters, exactly

    return ContactFilter


def filter_names() -> list[str]:
    return sorted(_filterset_class().base_filters)


def _query(filters: dict[str, list[str]]) -> QueryDict:
    query = QueryDict(mutable=True)
    for name, values in filters.items():
        query.setlist(name, [str(value) for value in values])
    return query


def filtered_contacts(filters: dict[str, list[str]], queryset: QuerySet[Contact]) -> QuerySet[Contact]:
    """``queryset`` with the contacts list's filters applied; 400 naming each unknown or invalid parameter."""
    filterset_class = _filterset_class()
    unknown = [name for name in filters if name not in filterset_class.base_filters and not name.startswith("cf_")]
    if unknown:
        raise InvalidSegmentFilters(
            f"Unknown contact filters: {', '.join(unknown)}. Use the contacts list's: {', '.join(filter_names())}.",
            extra={
                "errors": [
                    {"field": f"filters.{name}", "code": "unknown_filter", "detail": "Not a contacts list filter."}
                    for name in unknown
                ]
            },
        )
    filterset = filterset_class(data=_query(filters), queryset=queryset)
    if not filterset.is_valid():
        errors = [
            {
                "field": f"filters.{name}",
                "code": error.code or "invalid",
                "detail": str(error.message % (error.params or {})),
            }
            for name, field_errors in filterset.errors.as_data().items()
            for error in field_errors
        ]
        raise InvalidSegmentFilters(errors[0]["detail"], extra={"errors": errors})
    return filterset.filter_queryset(queryset)


def check_filters(filters: dict[str, list[str]]) -> None:
    """Validate saved filters now, without reading a contact."""
    filtered_contacts(filters, Contact.objects.none())


def audience(segment: Segment, reach: Reach) -> QuerySet[Contact]:
    """The segment's contacts within ``reach``: a static list's members, or the saved filters' result."""
    contacts = contacts_within(reach)
    if segment.kind == SegmentKind.STATIC:
        return contacts.filter(pk__in=SegmentMember.objects.filter(segment=segment).values("contact_id"))
    return filtered_contacts(segment.filters or {}, contacts)


def segments() -> QuerySet[Segment]:
    return Segment.objects.annotate(static_count=Count("members"))


# --- campaigns ---


def campaigns() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("segment")


def deliveries(campaign: Campaign) -> QuerySet[Delivery]:
    return Delivery.objects.filter(campaign=campaign).order_by("pk")


def organization_time_zone(organization) -> zoneinfo.ZoneInfo:
    """The organization's time zone (organizations have none yet: the deployment's ``TIME_ZONE``)."""
    name = getattr(organization, "time_zone", None) or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


STAT_FIELDS = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "bounced": "bounced_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "unsubscribed": "unsubscribed_at",
    "failed": "failed_at",
}


def campaign_stats(campaign: Campaign, *, interval: str = "hour") -> dict[str, Any]:
    """Totals of the campaign's deliveries, skips by reason, and each count by ``interval`` (hour or day)."""
    rows = Delivery.objects.filter(campaign=campaign)
    totals = rows.aggregate(
        recipients=Count("pk"),
        **{name: Count("pk", filter=Q(**{f"{field}__isnull": False})) for name, field in STAT_FIELDS.items()},
        queued=Count("pk", filter=Q(status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENDING))),
        skipped=Count("pk", filter=Q(status=DeliveryStatus.SKIPPED)),
    )
    skips = dict(
        rows.filter(status=DeliveryStatus.SKIPPED).order_by().values_list("skip_reason").annotate(n=Count("pk"))
    )
    buckets: dict[datetime.datetime, dict[str, int]] = {}
    for name, field in STAT_FIELDS.items():
        counted = (
            rows.filter(**{f"{field}__isnull": False})
            .annotate(bucket=Trunc(field, interval, tzinfo=datetime.UTC))
            .order_by()
            .values_list("bucket")
            .annotate(n=Count("pk"))
        )
        for bucket, n in counted:
            buckets.setdefault(bucket, dict.fromkeys(STAT_FIELDS, 0))[name] = n
    return {
        "campaign": campaign.pk,
        "status": campaign.status,
        **totals,
        "skipped_by_reason": {reason.value: skips.get(reason.value, 0) for reason in SkipReason},
        "interval": interval,
        "by_time": [{"at": at, **counts} for at, counts in sorted(buckets.items())],
    }


# --- consent ---


def consent_events() -> QuerySet[ConsentEvent]:
    return ConsentEvent.objects.all()


def consent_states() -> QuerySet[ConsentState]:
    return ConsentState.objects.all()


def suppressions() -> QuerySet[Suppression]:
    return Suppression.objects.all()


def has_opted_in(contact_id: int, channel: str) -> bool:
    return ConsentState.objects.filter(contact_id=contact_id, channel=channel, status=ConsentStatus.OPTED_IN).exists()


# --- the usage counter of Limit.CAMPAIGN_MESSAGES_PER_MONTH ---


def month_start(now: datetime.datetime | None = None) -> datetime.datetime:
    now = (now or timezone.now()).astimezone(datetime.UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def messages_this_month(organization) -> int:
    """Campaign messages sent since the start of the calendar month (UTC); billing asks from ``public`` too."""

    def count() -> int:
        return Delivery.objects.filter(sent_at__gte=month_start()).count()

    if connection.schema_name == organization.schema_name:
        return count()
    with schema_context(organization.schema_name):
        return count()


# --- the contact's timeline (registered in apps.py) ---


def _timeline_rows(record, access) -> QuerySet | None:
    if not isinstance(record, Contact) or (isinstance(access, Access) and access.scope(CAMPAIGN_VIEW) is None):
        return None
    return (
        Delivery.objects.filter(contact=record, sent_at__isnull=False)
        .annotate(row_type=Value(timeline.MESSAGE), row_key=Cast("pk", CharField()), row_at=F("sent_at"))
        .values_list("row_type", "row_key", "row_at")
        .order_by()
    )


def _timeline_load(keys: list[str]) -> dict[str, dict[str, Any]]:
    found = Delivery.objects.select_related("campaign").filter(pk__in=[int(key) for key in keys])
    return {
        str(delivery.pk): {
            "id": delivery.pk,
            "campaign": {"id": delivery.campaign_id, "name": delivery.campaign.name},
            "channel": delivery.channel,
            "status": delivery.status,
            "sent_at": delivery.sent_at,
            "delivered_at": delivery.delivered_at,
            "opened_at": delivery.opened_at,
            "clicked_at": delivery.clicked_at,
            "bounced_at": delivery.bounced_at,
            "unsubscribed_at": delivery.unsubscribed_at,
        }
        for delivery in found
    }


TIMELINE_SOURCE = timeline.TimelineSource(type=timeline.MESSAGE, rows=_timeline_rows, load=_timeline_load)
