"""Sending a campaign: runners claim queued deliveries in batches and send them one by one.

The claim (docs/decisions/0012-campaigns.md):

1. A runner takes a PostgreSQL session advisory lock on a fresh claim token. The lock lives as long as the
   runner's database connection: a killed worker's lock goes with it.
2. One statement claims a batch of due queued deliveries (``FOR UPDATE SKIP LOCKED``: runners side by side split
   the work) and marks them ``sending`` with the token, committed; the same statement reads each recipient's
   current consent, suppression and contact fields. Those without consent are skipped there and then.
3. Each message is sent, then its row is marked (``sent``, ``failed``, or ``queued`` again for a retry) in its own
   committed statement, only while the row still carries the token.
4. Rows left ``sending`` under a token whose lock is free belong to a dead runner (:func:`recover_stale`): an
   e-mail goes back to the queue and is sent again with the same Message-ID (at least once, the crash window
   being the server's acceptance before our commit); an SMS or WhatsApp message that was in flight (its request
   sent, marked ``in_flight_at`` before) is failed as "outcome unknown", never sent twice (at most once), and the
   provider's status callback, which names the delivery, sets it right if the message went.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

from billing.choices import Meter
from billing.features import Limit
from billing.metering import usage_record
from config.db import connection
from config.locks import LockNamespace, session_try_lock
from rbac.access import entitlements_for
from tenants.selectors import current_organization

from . import channels, selectors, services
from .choices import CampaignStatus, Channel, ConsentSource, ConsentStatus, DeliveryStatus, SkipReason
from .models import Campaign, Delivery
from .templates import Template, compile_template

logger = logging.getLogger(__name__)

TABLE = Delivery._meta.db_table


# --- claims ---


@contextmanager
def claim_lock() -> Iterator[uuid.UUID]:
    """A fresh claim token, locked by this connection while the block runs: a runner that dies loses the lock with
    its connection, which is how :func:`recover_stale` tells a dead claim from a live one."""
    while True:
        token = uuid.uuid4()
        with session_try_lock(LockNamespace.CAMPAIGN_CLAIM, token) as acquired:
            if acquired:  # a fresh token is refused only when its key collides with a live claim's
                yield token
                return


def recover_stale(*, campaign_id: int | None = None) -> int:
    """Deliveries left ``sending`` by a runner that died (its claim lock is free): e-mails go back to the queue;
    SMS/WhatsApp messages whose request was in flight are failed with an unknown outcome, the others queued."""
    claimed = Delivery.objects.filter(status=DeliveryStatus.SENDING)
    if campaign_id is not None:
        claimed = claimed.filter(campaign_id=campaign_id)
    recovered = 0
    for token in set(claimed.values_list("claim_token", flat=True)):
        if token is None:
            continue
        with session_try_lock(LockNamespace.CAMPAIGN_CLAIM, token) as acquired:
            if not acquired:
                continue  # alive: its runner holds the lock
            mine = Delivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING)
            unknown = mine.exclude(channel=Channel.EMAIL).filter(in_flight_at__isnull=False)
            recovered += unknown.update(
                status=DeliveryStatus.FAILED,
                failed_at=timezone.now(),
                claim_token=None,
                error="Outcome unknown: the worker stopped while the provider had the request (not sent again).",
            )
            recovered += mine.update(status=DeliveryStatus.QUEUED, claim_token=None, in_flight_at=None)
    return recovered


@dataclass
class Recipient:
    delivery_id: int
    uuid: str
    attempts: int
    contact_id: int | None
    first_name: str
    last_name: str
    email: str
    phone: str
    job_title: str
    company: str
    do_not_contact: bool
    consent: str | None
    suppressed: bool
    address: str = ""


def _claim(campaign: Campaign, token: uuid.UUID, limit: int) -> list[Recipient]:
    """Claim up to ``limit`` due queued deliveries and read each recipient as of now (one statement)."""
    if campaign.channel == Channel.EMAIL:
        address_sql = "lower(c.email)"
    else:
        address_sql = r"regexp_replace(c.phone, '[^0-9+]', '', 'g')"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH picked AS (
                SELECT id, contact_id FROM {TABLE}
                WHERE campaign_id = %(campaign)s AND status = %(queued)s
                  AND (next_attempt_at IS NULL OR next_attempt_at <= clock_timestamp())
                ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            UPDATE {TABLE} AS d SET status = %(sending)s, claim_token = %(token)s, claimed_at = clock_timestamp()
            FROM picked
            LEFT JOIN crm_contact AS c ON c.id = picked.contact_id
            LEFT JOIN crm_company AS co ON co.id = c.company_id
            LEFT JOIN campaigns_consentstate AS cs ON cs.contact_id = picked.contact_id AND cs.channel = %(channel)s
            WHERE d.id = picked.id
            RETURNING d.id, d.uuid, d.attempts, picked.contact_id, c.first_name, c.last_name, c.email, c.phone,
                c.job_title, co.name, c.do_not_contact, cs.status,
                EXISTS (SELECT 1 FROM campaigns_suppression AS s
                        WHERE s.channel = %(channel)s AND s.address = {address_sql})
            """,
            {
                "campaign": campaign.pk,
                "queued": DeliveryStatus.QUEUED,
                "sending": DeliveryStatus.SENDING,
                "limit": limit,
                "token": token,
                "channel": campaign.channel,
            },
        )
        rows = cursor.fetchall()
    return sorted((Recipient(row[0], str(row[1]), *row[2:]) for row in rows), key=lambda r: r.delivery_id)


def _verdict(recipient: Recipient, channel: str) -> str | None:
    """Why this message may not go (a skip reason), or None."""
    if recipient.contact_id is None:
        return SkipReason.CONTACT_DELETED
    if recipient.do_not_contact:
        return SkipReason.DO_NOT_CONTACT
    raw = recipient.email if channel == Channel.EMAIL else recipient.phone
    recipient.address = channels.normalize_address(channel, raw or "")
    if not recipient.address:
        return SkipReason.NO_ADDRESS
    if recipient.suppressed:
        return SkipReason.SUPPRESSED
    if recipient.consent != ConsentStatus.OPTED_IN:
        return SkipReason.NO_CONSENT
    return None


def _mark(delivery_id: int, token: uuid.UUID, *, table: str = TABLE, using=None, **fields) -> int:
    """Record a message's outcome, only while the row still carries the claim's token (one committed statement)."""
    assignments = ", ".join(f"{name} = %s" for name in fields)
    with (using or connection).cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments}, claim_token = NULL, in_flight_at = NULL "
            "WHERE id = %s AND claim_token = %s",
            [*fields.values(), delivery_id, token],
        )
        return cursor.rowcount


class Marker:
    """Commits "sent" marks on a database connection of its own while the runner sends the next message: the mark
    of message *n* goes out right after the server's acceptance, as it would inline, and overlaps the building and
    sending of message *n + 1*. At most ``MAX_PENDING`` marks wait; the runner waits for all of them before it
    releases or ends a claim, so a mark never trails its claim. A dead worker's pending marks (at most that many)
    leave their messages ``sending`` under its claim, to be sent again with the same Message-ID, as a crash between
    acceptance and an inline commit would (docs/decisions/0012-campaigns.md).

    Inside a caller's transaction (tests) marks are made inline: another connection would not see its rows."""

    MAX_PENDING = 2

    def __init__(self):
        self.inline = connection.in_atomic_block
        self.error: BaseException | None = None
        if self.inline:
            return
        import queue
        import threading

        self.table = f"{connection.ops.quote_name(connection.schema_name)}.{TABLE}"
        self.queue: queue.Queue = queue.Queue(maxsize=self.MAX_PENDING)
        self.thread = threading.Thread(target=self._run, name="campaign-marker", daemon=True)
        self.thread.start()

    def sent(self, delivery_id: int, token: uuid.UUID, **fields) -> None:
        if self.inline:
            _mark(delivery_id, token, **fields)
            return
        self._check()
        self.queue.put((delivery_id, token, fields))

    def drain(self) -> None:
        if not self.inline:
            self.queue.join()
            self._check()

    def close(self) -> None:
        if not self.inline:
            self.queue.put(None)
            self.thread.join(timeout=60)

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        from django.db import connections

        own = connections[connection.alias]
        try:
            with own.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            while True:
                item = self.queue.get()
                try:
                    if item is None:
                        return
                    if self.error is None:
                        delivery_id, token, fields = item
                        _mark(delivery_id, token, table=self.table, using=own, **fields)
                except BaseException as exc:  # the runner sees it at its next mark or drain
                    self.error = exc
                finally:
                    self.queue.task_done()
        finally:
            own.close()


def _skip(ids_by_reason: dict[str, list[int]], token: uuid.UUID) -> None:
    for reason, ids in ids_by_reason.items():
        Delivery.objects.filter(pk__in=ids, claim_token=token).update(
            status=DeliveryStatus.SKIPPED, skip_reason=reason, claim_token=None
        )


def _release(token: uuid.UUID) -> int:
    """Rows of this claim not attempted (the runner stops early) go back to the queue."""
    return Delivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.QUEUED, claim_token=None, in_flight_at=None
    )


def retry_delay(attempts: int) -> float:
    return min(3600.0, settings.CAMPAIGN_RETRY_FIRST_DELAY_SECONDS * 2 ** max(0, attempts - 1))


# --- windows and throttles ---


def window_wait(campaign: Campaign, now: datetime.datetime) -> float:
    """Seconds until the campaign's send window is open (0 when it is, or when it has none)."""
    if not campaign.window_days and campaign.window_start is None:
        return 0.0
    zone = zoneinfo.ZoneInfo(campaign.time_zone or "UTC")
    local = now.astimezone(zone)
    days = set(campaign.window_days or range(7))
    start = campaign.window_start or datetime.time(0, 0)
    end = campaign.window_end or datetime.time(23, 59, 59, 999999)
    for offset in range(8):
        day = (local + datetime.timedelta(days=offset)).date()
        if day.weekday() not in days:
            continue
        opens = datetime.datetime.combine(day, start, tzinfo=zone)
        closes = datetime.datetime.combine(day, end, tzinfo=zone)
        if local < closes:
            return max(0.0, (opens - local).total_seconds())
    return 3600.0


class Budget:
    """What the plan lets the organization send now: its monthly and hourly campaign limits, recounted every
    ``RECOUNT_SECONDS`` (runners side by side may pass a limit by what they send between recounts)."""

    RECOUNT_SECONDS = 5.0

    def __init__(self, organization):
        self.organization = organization
        self.checked_at = -1e9
        self.month_left: int | None = None
        self.hour_left: int | None = None

    def refresh(self) -> None:
        limits = entitlements_for(organization=self.organization)
        monthly = limits.limit(Limit.CAMPAIGN_MESSAGES_PER_MONTH)
        hourly = limits.limit(Limit.CAMPAIGN_MESSAGES_PER_HOUR)
        self.month_left = None if monthly is None else monthly - selectors.messages_this_month(self.organization)
        if hourly is None:
            self.hour_left = None
        else:
            hour = timezone.now().replace(minute=0, second=0, microsecond=0)
            self.hour_left = hourly - Delivery.objects.filter(sent_at__gte=hour).count()
        self.checked_at = time.monotonic()

    def allowance(self, wanted: int) -> int:
        if time.monotonic() - self.checked_at > self.RECOUNT_SECONDS:
            self.refresh()
        left = [value for value in (self.month_left, self.hour_left) if value is not None]
        return max(0, min([wanted, *left]))

    def spend(self, count: int) -> None:
        if self.month_left is not None:
            self.month_left -= count
        if self.hour_left is not None:
            self.hour_left -= count

    def month_spent(self) -> bool:
        return self.month_left is not None and self.month_left <= 0


def provider_allowance(channel: str, wanted: int) -> int:
    """Messages the provider's rate (``CAMPAIGN_*_PER_SECOND``, the whole deployment) lets go this second; waits
    for the next second when none. Redis unreachable: no limit (logged by the cache's breaker)."""
    per_second = settings.CAMPAIGN_EMAIL_PER_SECOND if channel == Channel.EMAIL else settings.CAMPAIGN_TWILIO_PER_SECOND
    if per_second <= 0:
        return wanted
    provider = "email" if channel == Channel.EMAIL else "twilio"
    cache = caches["control"]
    for _ in range(20):
        second = int(time.time())
        key = f"campaigns:rate:{provider}:{second}"
        cache.add(key, 0, 5)
        used = cache.incr(key, wanted) if cache.get(key) is not None else None
        if used is None:
            return wanted
        granted = min(wanted, per_second - (used - wanted))
        if granted > 0:
            if granted < wanted:
                cache.incr(key, granted - wanted)
            return granted
        cache.incr(key, -wanted)
        time.sleep(max(0.0, second + 1 - time.time()))
    return 0


# --- the runner ---


@dataclass(frozen=True)
class RunOutcome:
    state: str  # done, continue, wait, stopped
    sent: int = 0
    again_in: float | None = None  # seconds: queue the runner again after this (0: now)


def _touch(campaign: Campaign) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(last_progress_at=timezone.now())


def run(*, campaign_id: int, slice_seconds: float | None = None) -> RunOutcome:
    """Send the campaign's due messages batch by batch until none is due, ``slice_seconds`` pass, the campaign
    stops sending, its window closes or its plan's allowance is spent."""
    deadline = time.monotonic() + (settings.CAMPAIGN_RUNNER_SLICE_SECONDS if slice_seconds is None else slice_seconds)
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return RunOutcome("stopped")
    recover_stale(campaign_id=campaign.pk)
    organization = current_organization()
    subject = compile_template(campaign.subject, field="subject") if campaign.channel == Channel.EMAIL else None
    body = compile_template(campaign.body, field="body")
    budget = Budget(organization)
    sender = None
    hooks = channels.hooks_url(organization) if campaign.channel != Channel.EMAIL else ""
    sent = 0
    _asynchronous_commits(True)
    marker = None
    try:
        marker = Marker()
        while True:
            wait = window_wait(campaign, timezone.now())
            if wait > 0:
                return RunOutcome("wait", sent, again_in=wait)
            if time.monotonic() > deadline:
                return RunOutcome("continue", sent, again_in=0)
            if Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).count() == 0:
                return RunOutcome("stopped", sent)
            size = budget.allowance(settings.CAMPAIGN_BATCH_SIZE)
            if size == 0:
                if budget.month_spent():
                    services.campaign_pause(campaign=campaign, actor=services.SENDING, reason="plan_limit_reached")
                    return RunOutcome("stopped", sent)
                return RunOutcome("wait", sent, again_in=_next_hour())
            size = provider_allowance(campaign.channel, size)
            with claim_lock() as token:
                batch = _claim(campaign, token, size)
                if not batch:
                    return _idle(campaign, sent)
                if sender is None:
                    sender = channels.sender_for(organization, campaign.channel)
                try:
                    stop, count = _send_batch(
                        campaign, organization, sender, marker, token, batch, subject, body, hooks
                    )
                finally:
                    marker.drain()  # every mark of this claim is committed before the claim ends
                _release(token)
            sent += count
            budget.spend(count)
            if count:  # billing's meter: usage alerts, and the provider where the plan prices campaign messages
                usage_record(organization=organization, meter=Meter.CAMPAIGN_MESSAGES, quantity=count)
            _touch(campaign)
            if stop is not None:
                return stop
    finally:
        if marker is not None:
            marker.close()
        _asynchronous_commits(False)
        if sender is not None:
            sender.close()


def _asynchronous_commits(on: bool) -> None:
    """The runner's marks commit without waiting for the WAL to reach the disk (``synchronous_commit = off``): a
    commit costs a round trip instead of an fsync per message. A dead worker loses nothing (its commits are in
    PostgreSQL); a PostgreSQL crash may lose the last fraction of a second of marks, whose e-mails are then sent
    again with the same Message-ID (docs/decisions/0012-campaigns.md)."""
    if connection.in_atomic_block:
        return  # inside a caller's transaction (tests): leave its settings alone
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off" if on else "RESET synchronous_commit")


def _next_hour() -> float:
    now = timezone.now()
    return (now.replace(minute=0, second=0, microsecond=0) + datetime.timedelta(hours=1) - now).total_seconds() + 1


def _idle(campaign: Campaign, sent: int) -> RunOutcome:
    """Nothing due now: the campaign is complete, or waits for retries (the beat tick wakes it)."""
    services.campaign_complete_if_done(campaign_id=campaign.pk)
    later = (
        Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED, next_attempt_at__isnull=False)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if later is None:
        return RunOutcome("done", sent)
    return RunOutcome("wait", sent, again_in=max(1.0, (later - timezone.now()).total_seconds()))


def _send_batch(
    campaign: Campaign,
    organization,
    sender,
    marker: Marker,
    token: uuid.UUID,
    batch: list[Recipient],
    subject: Template | None,
    body: Template,
    hooks: str,
) -> tuple[RunOutcome | None, int]:
    skipped: dict[str, list[int]] = {}
    sendable = []
    for recipient in batch:
        reason = _verdict(recipient, campaign.channel)
        if reason is None:
            sendable.append(recipient)
        else:
            skipped.setdefault(reason, []).append(recipient.delivery_id)
    if skipped:
        _skip(skipped, token)
    is_email = campaign.channel == Channel.EMAIL
    base_context = {"organization.name": organization.name}
    count = 0
    for recipient in sendable:
        context = channels.contact_context(
            recipient.first_name,
            recipient.last_name,
            recipient.email,
            recipient.phone,
            recipient.job_title,
            recipient.company,
        )
        context.update(base_context)
        link = channels.unsubscribe_url(
            organization, contact_id=recipient.contact_id or 0, channel=campaign.channel, campaign_id=campaign.pk
        )
        context["unsubscribe_url"] = link
        text = body.render(context)
        if is_email and "unsubscribe_url" not in body.variables:
            text = f"{text}\n\n--\nUnsubscribe: {link}\n"
        outgoing = channels.Outgoing(
            delivery_uuid=recipient.uuid,
            to=recipient.address,
            subject=subject.render(context) if subject is not None else "",
            body=text,
            unsubscribe_url=link if is_email else "",
            status_callback=f"{hooks}/twilio/status/?d={recipient.uuid}" if hooks else "",
        )
        if not is_email:  # at most once: the row says the request is out before it is
            Delivery.objects.filter(pk=recipient.delivery_id, claim_token=token).update(in_flight_at=timezone.now())
        try:
            provider_id = sender.send(outgoing)
        except channels.Outage as exc:
            _retry(recipient, token, exc.detail)
            return RunOutcome("wait", count, again_in=retry_delay(recipient.attempts + 1)), count
        except channels.Ambiguous as exc:
            if is_email:  # at least once, with the same Message-ID
                _retry(recipient, token, exc.detail)
            else:
                _mark(
                    recipient.delivery_id,
                    token,
                    status=DeliveryStatus.FAILED,
                    failed_at=timezone.now(),
                    address=recipient.address,
                    error=f"Outcome unknown: {exc.detail}"[:500],
                )
            return RunOutcome("wait", count, again_in=retry_delay(recipient.attempts + 1)), count
        except channels.Temporary as exc:
            _retry(recipient, token, exc.detail)
            continue
        except channels.Permanent as exc:
            _mark(
                recipient.delivery_id,
                token,
                status=DeliveryStatus.FAILED,
                failed_at=timezone.now(),
                address=recipient.address,
                error=exc.detail,
            )
            if isinstance(exc, channels.TwilioOptedOut):
                services.unsubscribe(
                    contact_id=recipient.contact_id or 0,  # sendable: never None (_verdict)
                    channel=campaign.channel,
                    campaign_id=campaign.pk,
                    source=ConsentSource.SMS_KEYWORD,
                    proof=exc.detail,
                )
            continue
        marker.sent(
            recipient.delivery_id,
            token,
            status=DeliveryStatus.SENT,
            sent_at=timezone.now(),
            address=recipient.address,
            provider_message_id=provider_id[:200],
            error="",
        )
        count += 1
    return None, count


def _retry(recipient: Recipient, token: uuid.UUID, detail: str) -> None:
    attempts = recipient.attempts + 1
    if attempts >= settings.CAMPAIGN_MAX_ATTEMPTS:
        _mark(
            recipient.delivery_id,
            token,
            status=DeliveryStatus.FAILED,
            failed_at=timezone.now(),
            attempts=attempts,
            address=recipient.address,
            error=f"Gave up after {attempts} attempts: {detail}"[:500],
        )
        return
    next_at = timezone.now() + datetime.timedelta(seconds=retry_delay(attempts))
    _mark(
        recipient.delivery_id,
        token,
        status=DeliveryStatus.QUEUED,
        attempts=attempts,
        next_attempt_at=next_at,
        address=recipient.address,
        error=detail,
    )


# --- the tick ---


def tick(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """One organization's periodic pass: start due campaigns, recover dead runners' claims, wake campaigns with
    due messages and no progress for a while (their runner was lost or they waited)."""
    now = now or timezone.now()
    started = 0
    for campaign_id in Campaign.objects.filter(status=CampaignStatus.SCHEDULED, scheduled_at__lte=now).values_list(
        "pk", flat=True
    ):
        if services.campaign_start(campaign_id=campaign_id, now=now) is not None:
            started += 1
    recovered = recover_stale()
    idle_since = now - datetime.timedelta(seconds=settings.CAMPAIGN_RUNNER_SLICE_SECONDS)
    woken = 0
    sending = Campaign.objects.filter(status=CampaignStatus.SENDING)
    for campaign in sending:
        due = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.QUEUED).exclude(next_attempt_at__gt=now)
        if not due.exists():
            if not Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENDING).exists():
                services.campaign_complete_if_done(campaign_id=campaign.pk)
            continue
        if campaign.last_progress_at is None or campaign.last_progress_at < idle_since or recovered:
            with transaction.atomic():
                services.runners_after_commit(campaign.pk)
            woken += 1
    return {"started": started, "recovered": recovered, "woken": woken}
