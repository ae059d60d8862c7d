"""The outside services campaigns talk to, behind one small interface per channel.

- E-mail: Django's mail backends (``CAMPAIGN_EMAIL_BACKEND``: SMTP, or an anymail provider). Every message
  carries its idempotent ``Message-ID`` (the delivery's uuid), RFC 8058 ``List-Unsubscribe`` with
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, and anymail metadata naming the delivery.
- SMS and WhatsApp: the Twilio client (``TWILIO_*``), its API host replaceable (``TWILIO_API_BASE_URL``), with
  a status callback per message on the organization's host.

A sender's ``send`` returns the provider's message id or raises :class:`Permanent` (this message will never go:
failed), :class:`Temporary` (this message later) or :class:`Outage` (the provider is unreachable: every message
later); :class:`Ambiguous` means the provider may have taken it (a read timeout), which each channel's claim rule
settles (docs/decisions/0012-campaigns.md).
"""

from __future__ import annotations

import re
import smtplib
import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage, get_connection

from .choices import Channel
from .errors import ChannelNotConfigured

# --- addresses ---

_NOT_PHONE = re.compile(r"[^0-9+]")


def normalize_phone(raw: str) -> str:
    """Digits and ``+`` only (as the claim's SQL compares them)."""
    return _NOT_PHONE.sub("", raw or "")


def normalize_address(channel: str, raw: str) -> str:
    if channel == Channel.EMAIL:
        return (raw or "").strip().lower()
    return normalize_phone((raw or "").removeprefix("whatsapp:"))


# --- configuration ---


def email_backend() -> str:
    return settings.CAMPAIGN_EMAIL_BACKEND or settings.EMAIL_BACKEND


def twilio_configured() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN)


def _sender_number(channel: str) -> str:
    return settings.TWILIO_SMS_FROM if channel == Channel.SMS else settings.TWILIO_WHATSAPP_FROM


def require_configured(channel: str) -> None:
    """409 ``channel_not_configured`` when the server has no provider for ``channel``."""
    if channel == Channel.EMAIL:
        if not email_backend():
            raise ChannelNotConfigured("No mail backend is configured (CAMPAIGN_EMAIL_BACKEND, EMAIL_BACKEND).")
        return
    if not twilio_configured() or not _sender_number(channel):
        names = "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and " + (
            "TWILIO_SMS_FROM" if channel == Channel.SMS else "TWILIO_WHATSAPP_FROM"
        )
        raise ChannelNotConfigured(f"{Channel(channel).label} needs {names} on the server.")


# --- links on the organization's host ---

_UNSUBSCRIBE_SALT = "campaigns.unsubscribe"
_HOOKS_SALT = "campaigns.hooks"


def public_url(organization) -> str:
    return settings.CAMPAIGN_PUBLIC_URL.format(slug=organization.slug).rstrip("/")


def hooks_token(organization) -> str:
    """The secret path segment of the organization's provider callbacks: providers send no X-Organization, the
    host names the organization and this proves the URL was ours."""
    return signing.Signer(salt=_HOOKS_SALT).signature(f"org:{organization.pk}")


def hooks_url(organization) -> str:
    return f"{public_url(organization)}/campaigns/hooks/{hooks_token(organization)}"


_unsubscribe_signer = signing.Signer(salt=_UNSUBSCRIBE_SALT)


def unsubscribe_token(*, organization_id: int, contact_id: int, channel: str, campaign_id: int | None) -> str:
    return _unsubscribe_signer.sign(f"{organization_id}.{contact_id}.{channel}.{campaign_id or 0}")


@dataclass(frozen=True)
class UnsubscribeTarget:
    organization_id: int
    contact_id: int
    channel: str
    campaign_id: int | None


def read_unsubscribe_token(token: str) -> UnsubscribeTarget | None:
    try:
        organization_id, contact_id, channel, campaign_id = _unsubscribe_signer.unsign(token).split(".")
        return UnsubscribeTarget(int(organization_id), int(contact_id), Channel(channel), int(campaign_id) or None)
    except (signing.BadSignature, ValueError):
        return None


def unsubscribe_url(organization, *, contact_id: int, channel: str, campaign_id: int | None) -> str:
    token = unsubscribe_token(
        organization_id=organization.pk, contact_id=contact_id, channel=channel, campaign_id=campaign_id
    )
    return f"{public_url(organization)}/campaigns/unsubscribe/{token}/"


# --- rendering ---

SAMPLE = {
    "contact.first_name": "Ada",
    "contact.last_name": "Lovelace",
    "contact.full_name": "Ada Lovelace",
    "contact.email": "ada@example.com",
    "contact.phone": "+15550100",
    "contact.job_title": "Analyst",
    "contact.company": "Analytical Engines",
}


def contact_context(first_name, last_name, email, phone, job_title, company) -> dict[str, str]:
    return {
        "contact.first_name": first_name or "",
        "contact.last_name": last_name or "",
        "contact.full_name": f"{first_name or ''} {last_name or ''}".strip(),
        "contact.email": email or "",
        "contact.phone": phone or "",
        "contact.job_title": job_title or "",
        "contact.company": company or "",
    }


def render_context(*, organization, contact, channel: str, campaign_id: int | None) -> dict[str, str]:
    if contact is None:
        context = dict(SAMPLE)
        link = f"{public_url(organization)}/campaigns/unsubscribe/sample/"
    else:
        company = contact.company.name if contact.company_id else ""
        context = contact_context(
            contact.first_name, contact.last_name, contact.email, contact.phone, contact.job_title, company
        )
        link = unsubscribe_url(organization, contact_id=contact.pk, channel=channel, campaign_id=campaign_id)
    context["organization.name"] = organization.name
    context["unsubscribe_url"] = link
    return context


# --- outcomes ---


class SendError(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail[:500]


class Permanent(SendError):
    """This message will never be accepted (invalid or refused address): failed."""


class Temporary(SendError):
    """This message was refused for now (greylisting, a full mailbox): try it again later."""


class Outage(SendError):
    """The provider is unreachable or failing; nothing was taken: every message later."""


class Ambiguous(SendError):
    """The provider may have taken the message (no answer after the request was sent)."""


@dataclass(frozen=True)
class Outgoing:
    delivery_uuid: str
    to: str
    subject: str
    body: str
    unsubscribe_url: str = ""
    status_callback: str = ""


# --- e-mail ---


def from_address(organization) -> str:
    name, address = parseaddr(settings.CAMPAIGN_FROM_EMAIL)
    return formataddr((organization.name or name, address))


def message_id(delivery_uuid: str) -> str:
    domain = parseaddr(settings.CAMPAIGN_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<{delivery_uuid}@{domain}>"


class _Serialized:
    """What Django's mail backends read of ``EmailMessage.message()``: the message's bytes."""

    def __init__(self, data: bytes):
        self.data = data

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        return self.data if linesep == "\r\n" else self.data.replace(b"\r\n", linesep.encode())

    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:
        return self.as_bytes(linesep=linesep).decode()


class CampaignEmail(EmailMessage):
    """Django's ``EmailMessage``; a plain-text message is serialized here in one pass (the headers Django would
    write, the UTF-8 body as 8bit, CRLF line ends), about ten times cheaper than the email package at a campaign's
    volume. Anything unusual (header line breaks, which Django refuses, lines past 998 bytes, non-ASCII addresses)
    goes through Django's own ``message()``. Provider backends (anymail) read the attributes, not this."""

    _from_headers: dict[str, str] = {}
    metadata: dict[str, str]  # anymail: returned by the tracking webhooks

    def message(self, *args: Any, **kwargs: Any) -> Any:
        fast = self._serialized()
        return fast if fast is not None else super().message(*args, **kwargs)

    def _serialized(self) -> _Serialized | None:
        if self.cc or self.bcc or self.reply_to or self.attachments or len(self.to) != 1:
            return None
        values = [self.subject, self.from_email, self.to[0], *self.extra_headers.values()]
        if any("\n" in value or "\r" in value for value in values) or not self.to[0].isascii():
            return None
        body = self.body.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        if any(len(line) > 998 for line in body.split(b"\r\n")):
            return None
        subject = self.subject if self.subject.isascii() else Header(str(self.subject), "utf-8").encode()
        sender = self._from_headers.get(self.from_email)
        if sender is None:
            name, address = parseaddr(self.from_email)
            if not address.isascii():
                return None
            sender = formataddr((name, address), charset="utf-8")
            if len(self._from_headers) < 1024:
                self._from_headers[self.from_email] = sender
        lines = [
            'Content-Type: text/plain; charset="utf-8"',
            "MIME-Version: 1.0",
            "Content-Transfer-Encoding: 8bit",
            f"Subject: {subject}",
            f"From: {sender}",
            f"To: {self.to[0]}",
            f"Date: {formatdate(localtime=settings.EMAIL_USE_LOCALTIME)}",
            *(f"{name}: {value}" for name, value in self.extra_headers.items()),
        ]
        head = "\r\n".join(lines).encode()
        if any(len(line) > 998 for line in head.split(b"\r\n")):
            return None
        return _Serialized(head + b"\r\n\r\n" + body)


class EmailSender:
    """One mail connection (one SMTP session, or a provider's HTTP session) for a run of messages."""

    def __init__(self, organization):
        self.organization = organization
        self.sender = from_address(organization)
        self.connection = get_connection(email_backend(), fail_silently=False)
        self._open = False

    def message(self, outgoing: Outgoing) -> EmailMessage:
        headers = {"Message-ID": message_id(outgoing.delivery_uuid)}
        if outgoing.unsubscribe_url:
            headers["List-Unsubscribe"] = f"<{outgoing.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message = CampaignEmail(
            subject=outgoing.subject,
            body=outgoing.body,
            from_email=self.sender,
            to=[outgoing.to],
            headers=headers,
            connection=self.connection,
        )
        message.metadata = {"delivery": outgoing.delivery_uuid}  # anymail: returned by the tracking webhooks
        return message

    def send(self, outgoing: Outgoing) -> str:
        message = self.message(outgoing)
        try:
            if not self._open:
                self.connection.open()
                self._open = True
            self.connection.send_messages([message])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            text = "; ".join(
                f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
                for code, text in exc.recipients.values()
            )
            if codes and all(500 <= code < 600 for code in codes):
                raise Permanent(f"Refused: {text}") from exc
            raise Temporary(f"Refused for now: {text}") from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            self._drop()
            if 500 <= exc.smtp_code < 600 and isinstance(exc, smtplib.SMTPDataError):
                raise Permanent(f"Refused: {exc.smtp_code} {exc.smtp_error!r}") from exc
            raise Outage(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        except smtplib.SMTPServerDisconnected as exc:
            # The answer to DATA may be what was lost: the server may have the message (same Message-ID again).
            self._drop()
            raise Ambiguous(f"The mail server disconnected: {exc}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise Outage(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            return self._anymail_outcome(exc)
        status = getattr(message, "anymail_status", None)
        return (
            (getattr(status, "message_id", None) or message.extra_headers["Message-ID"])
            if status
            else (message.extra_headers["Message-ID"])
        )

    def _anymail_outcome(self, exc: Exception) -> str:
        from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused, AnymailRequestsAPIError

        if isinstance(exc, AnymailRecipientsRefused):
            raise Permanent(str(exc)) from exc
        if isinstance(exc, AnymailRequestsAPIError) and exc.status_code and 400 <= exc.status_code < 500:
            if exc.status_code == 429:
                raise Outage(str(exc)) from exc
            raise Permanent(str(exc)) from exc
        if isinstance(exc, AnymailAPIError):
            raise Outage(str(exc)) from exc
        raise exc

    def _drop(self) -> None:
        try:
            self.connection.close()
        except Exception:  # a broken session: nothing to close cleanly
            pass
        self._open = False

    def close(self) -> None:
        if self._open:
            self._drop()


# --- SMS and WhatsApp ---

TWILIO_API = "https://api.twilio.com"


def twilio_client():
    """The Twilio client, its API host replaced by ``TWILIO_API_BASE_URL`` when set, every call bounded by
    ``TWILIO_TIMEOUT_SECONDS``."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    base = settings.TWILIO_API_BASE_URL.rstrip("/")

    class HttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            if base and url.startswith(TWILIO_API):
                url = base + url[len(TWILIO_API) :]
            return super().request(method, url, *args, **kwargs)

    return Client(
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        http_client=HttpClient(timeout=settings.TWILIO_TIMEOUT_SECONDS),
        environment={},
    )


# Twilio error codes that mean this number will never take the message.
TWILIO_PERMANENT = {21211, 21212, 21214, 21217, 21219, 21401, 21407, 21408, 21421, 21612, 21614, 63003, 63024}
TWILIO_OPTED_OUT = 21610  # the recipient replied STOP to the sender


class TwilioOptedOut(Permanent):
    """Twilio refuses: the recipient opted out with the carrier (STOP)."""


def _nothing_sent(exc) -> bool:
    """A connection error before the request went out (refused, unreachable, connect timeout)."""
    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


class TwilioSender:
    def __init__(self, organization, channel: str):
        self.channel = channel
        self.client = twilio_client()
        self.sender = _sender_number(channel)

    def _address(self, number: str) -> str:
        return f"whatsapp:{number}" if self.channel == Channel.WHATSAPP else number

    def send(self, outgoing: Outgoing) -> str:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        options = {"status_callback": outgoing.status_callback} if outgoing.status_callback else {}
        try:
            message = self.client.messages.create(
                to=self._address(outgoing.to), from_=self._address(self.sender), body=outgoing.body, **options
            )
        except TwilioRestException as exc:
            if exc.code == TWILIO_OPTED_OUT:
                raise TwilioOptedOut(f"{exc.code}: {exc.msg}") from exc
            if exc.status == 429 or exc.status >= 500:
                raise Outage(f"HTTP {exc.status}: {exc.msg}") from exc
            if exc.code in TWILIO_PERMANENT or 400 <= exc.status < 500:
                raise Permanent(f"{exc.code}: {exc.msg}") from exc
            raise Outage(f"HTTP {exc.status}: {exc.msg}") from exc
        except requests.exceptions.ConnectionError as exc:
            if _nothing_sent(exc):
                raise Outage(f"Could not reach Twilio: {exc}") from exc
            raise Ambiguous(f"The connection to Twilio broke: {exc}") from exc
        except requests.exceptions.ReadTimeout as exc:
            raise Ambiguous(f"No answer from Twilio: {exc}") from exc
        except (TwilioException, requests.exceptions.RequestException) as exc:
            raise Outage(f"{type(exc).__name__}: {exc}") from exc
        return message.sid

    def close(self) -> None:
        pass


def sender_for(organization, channel: str):
    return EmailSender(organization) if channel == Channel.EMAIL else TwilioSender(organization, channel)


def send_test(*, organization, channel: str, to: str, subject: str, body: str) -> None:
    """One test message, now (the caller waits: every call has its timeout). Provider errors are 502-free: a
    refused test is 400 ``test_send_failed`` naming the provider's answer."""
    from config.api.errors import DomainError

    sender = sender_for(organization, channel)
    try:
        sender.send(Outgoing(delivery_uuid=f"test-{uuid.uuid4()}", to=to, subject=f"[Test] {subject}", body=body))
    except SendError as exc:
        raise DomainError(f"The provider refused the test: {exc.detail}", code="test_send_failed") from exc
    finally:
        sender.close()
