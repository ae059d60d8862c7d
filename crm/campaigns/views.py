"""Pages and callbacks outside the API, reached without a login on the organization's host
(``<slug>.<TENANT_BASE_DOMAIN>``, resolved by the tenant middleware like any request):

- ``/campaigns/unsubscribe/<token>/``: the signed link of every message. GET shows a page with one button; POST
  (that button, or a mail client's RFC 8058 one-click ``List-Unsubscribe=One-Click``) unsubscribes at once.
- ``/campaigns/hooks/<token>/email/<provider>/tracking/``: anymail's tracking webhook of the provider.
- ``/campaigns/hooks/<token>/twilio/status/`` and ``.../twilio/inbound/``: Twilio's status callbacks and inbound
  messages, verified with Twilio's request signature.

``<token>`` of the hooks is the organization's (:func:`crm.campaigns.channels.hooks_token`): a URL that does not
carry it for the organization of the host is a 404, like an unknown one.
"""

from __future__ import annotations

import html
import logging

from django.conf import settings
from django.http import HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.api.errors import problem_response

from . import channels, services, tracking
from .choices import Channel, ConsentSource

logger = logging.getLogger(__name__)

# Providers whose tracking webhooks anymail normalizes (anymail.webhooks.<module>.<view>).
EMAIL_TRACKING_VIEWS = {
    "mailgun": ("mailgun", "MailgunTrackingWebhookView"),
    "postmark": ("postmark", "PostmarkTrackingWebhookView"),
    "sendgrid": ("sendgrid", "SendGridTrackingWebhookView"),
    "amazon-ses": ("amazon_ses", "AmazonSESTrackingWebhookView"),
    "brevo": ("brevo", "BrevoTrackingWebhookView"),
    "mailjet": ("mailjet", "MailjetTrackingWebhookView"),
    "sparkpost": ("sparkpost", "SparkPostTrackingWebhookView"),
    "resend": ("resend", "ResendTrackingWebhookView"),
}


def _not_found():
    return problem_response(status_code=404, code="not_found", title="Not found.")


def _organization(request):
    return getattr(request, "tenant", None)


def _hooks_allowed(request, token: str) -> bool:
    organization = _organization(request)
    return organization is not None and constant_time_compare(token, channels.hooks_token(organization))


# --- unsubscribe ---

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem">
<h1 style="font-size: 1.4rem">{title}</h1>{content}</body></html>"""


def _page(title: str, content: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(_PAGE.format(title=html.escape(title), content=content), status=status)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    """No login: the signed token names the contact, channel and campaign. GET asks (a link scanner's GET
    changes nothing); POST unsubscribes at once."""
    organization = _organization(request)
    target = channels.read_unsubscribe_token(token)
    if organization is None or target is None or target.organization_id != organization.pk:
        return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", status=404)
    what = {Channel.EMAIL: "e-mails", Channel.SMS: "text messages", Channel.WHATSAPP: "WhatsApp messages"}
    kind = what[Channel(target.channel)]
    name = html.escape(organization.name)
    if request.method == "GET":
        form = (
            f"<p>Stop receiving {kind} from {name}?</p>"
            '<form method="post"><button type="submit" name="confirm" value="1">Unsubscribe</button></form>'
        )
        return _page("Unsubscribe", form)
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    source = ConsentSource.ONE_CLICK if one_click else ConsentSource.UNSUBSCRIBE_LINK
    proof = (
        f"{'RFC 8058 one-click POST' if one_click else 'unsubscribe page'} from {request.META.get('REMOTE_ADDR', '')}"
    )
    done = services.unsubscribe(
        contact_id=target.contact_id,
        channel=target.channel,
        campaign_id=target.campaign_id,
        source=source,
        proof=proof[:500],
    )
    if not done:
        return _page("Link not valid", "<p>This unsubscribe link is not valid any more.</p>", status=404)
    return _page("Unsubscribed", f"<p>You will receive no more {kind} from {name}.</p>")


# --- e-mail tracking (anymail) ---


@csrf_exempt
def email_tracking(request, token: str, provider: str):
    if not _hooks_allowed(request, token) or provider not in EMAIL_TRACKING_VIEWS:
        return _not_found()
    import importlib

    from anymail.exceptions import AnymailConfigurationError

    module_name, class_name = EMAIL_TRACKING_VIEWS[provider]
    view_class = getattr(importlib.import_module(f"anymail.webhooks.{module_name}"), class_name)
    try:
        view = view_class.as_view()
        return view(request)
    except AnymailConfigurationError:
        return problem_response(
            status_code=404,
            code="channel_not_configured",
            title="This provider is not configured on the server.",
        )


# --- Twilio ---


def _twilio_verified(request) -> bool:
    """Twilio's signature over the URL we gave it (our public URL, not the one a proxy rewrote) and the form."""
    if not channels.twilio_configured():
        return False
    from twilio.request_validator import RequestValidator

    url = channels.public_url(_organization(request)) + request.get_full_path()
    signature = request.headers.get("X-Twilio-Signature", "")
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST.dict(), signature)


def _forbidden():
    return problem_response(status_code=403, code="invalid_signature", title="The request signature does not verify.")


@csrf_exempt
@require_http_methods(["POST"])
def twilio_status(request, token: str):
    if not _hooks_allowed(request, token):
        return _not_found()
    if not _twilio_verified(request):
        return _forbidden()
    if not tracking.twilio_status(delivery_uuid=request.GET.get("d", ""), params=request.POST.dict()):
        return _not_found()
    return HttpResponse(status=204)


@csrf_exempt
@require_http_methods(["POST"])
def twilio_inbound(request, token: str):
    if not _hooks_allowed(request, token):
        return _not_found()
    if not _twilio_verified(request):
        return _forbidden()
    tracking.twilio_inbound(params=request.POST.dict())
    return HttpResponse('<?xml version="1.0" encoding="UTF-8"?><Response/>', content_type="text/xml")
