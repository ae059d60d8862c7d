"""The payment provider (Stripe), through the official ``stripe`` library: the only module that talks to it.

Every call has a timeout (``STRIPE_TIMEOUT_SECONDS``) and at most ``STRIPE_MAX_NETWORK_RETRIES`` retries (the
library retries connection errors and 5xx with an idempotency key), and goes through the provider's breaker
(:mod:`config.breaker`): after a connection failure or a 5xx the provider is skipped for a few seconds, and callers
get :class:`~billing.errors.PaymentProviderUnavailable` (503) at once instead of paying the timeout again. A refusal
by the provider (4xx: a wrong price id, an unknown customer) is :class:`~billing.errors.PaymentProviderError` (502).
Without ``STRIPE_API_KEY`` the provider is off (:func:`configured`); tests point ``STRIPE_API_BASE_URL`` at a
local server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import stripe
from django.conf import settings

from config.breaker import Breaker, Unavailable, breaker_for

from .errors import InvalidProviderSignature, PaymentProviderError, PaymentProviderUnavailable

T = TypeVar("T")

# Outages: the provider did not answer, or answered 5xx / 429. Anything else it says is a refusal.
OUTAGES = (stripe.APIConnectionError, stripe.RateLimitError)

_client: tuple[tuple, stripe.StripeClient] | None = None


def configured() -> bool:
    return bool(settings.STRIPE_API_KEY)


def api_base() -> str:
    return settings.STRIPE_API_BASE_URL or stripe.DEFAULT_API_BASE


def breaker() -> Breaker:
    parts = urlsplit(api_base())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return breaker_for(f"{parts.scheme}://{parts.hostname}:{port}")


def client() -> stripe.StripeClient:
    """One client per process and settings (tests change them)."""
    global _client
    key = (settings.STRIPE_API_KEY, api_base(), settings.STRIPE_TIMEOUT_SECONDS, settings.STRIPE_MAX_NETWORK_RETRIES)
    if _client is None or _client[0] != key:
        http_client = stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS)
        made = stripe.StripeClient(
            settings.STRIPE_API_KEY,
            base_addresses={"api": api_base()},
            max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
            http_client=http_client,
        )
        _client = (key, made)
    return _client[1]


class _ServerError(Exception):
    """A 5xx from the provider: an outage for the breaker."""


def call(what: str, request: Callable[[stripe.StripeClient], T]) -> T:
    """Run one request against the provider under its breaker, translating its failures into domain errors."""
    try:
        with breaker().guard(f"payment provider ({what})", "payment calls refused", errors=(*OUTAGES, _ServerError)):
            try:
                return request(client())
            except stripe.StripeError as exc:
                if isinstance(exc, OUTAGES) or (exc.http_status or 0) >= 500:
                    raise _ServerError(str(exc)) from exc
                raise
    except Unavailable as exc:
        raise PaymentProviderUnavailable(headers={"Retry-After": "30"}, extra={"retry_after": 30}) from exc
    except stripe.StripeError as exc:
        message = getattr(exc, "user_message", None) or str(exc) or "refused"
        raise PaymentProviderError(f"The payment provider refused {what}: {message}"[:500]) from exc


# --- the calls the product makes ---


def customer_create(*, name: str, email: str, organization_id: int) -> str:
    customer = call(
        "creating the customer",
        lambda c: c.v1.customers.create(
            params={"name": name, "email": email, "metadata": {"organization": str(organization_id)}},
            options={"idempotency_key": f"customer-{organization_id}"},
        ),
    )
    return customer.id


@dataclass(frozen=True)
class Checkout:
    id: str
    url: str


def checkout_session_create(
    *, customer_id: str, prices: list[str], metered_prices: list[str], metadata: dict[str, str], trial_end: int | None
) -> Checkout:
    """A hosted checkout page for a subscription to ``prices`` (and the plan's metered prices)."""
    line_items: list[Any] = [{"price": price, "quantity": 1} for price in prices]
    line_items += [{"price": price} for price in metered_prices]  # metered: no quantity
    subscription_data: dict[str, Any] = {"metadata": metadata}
    if trial_end:
        subscription_data["trial_end"] = trial_end
    params: Any = {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": metadata["organization"],
        "line_items": line_items,
        "metadata": metadata,
        "subscription_data": subscription_data,
        "success_url": f"{settings.BILLING_RETURN_URL}?checkout=success",
        "cancel_url": f"{settings.BILLING_RETURN_URL}?checkout=canceled",
    }
    session = call("creating a checkout session", lambda c: c.v1.checkout.sessions.create(params=params))
    return Checkout(id=session.id, url=session.url or "")


def portal_session_create(*, customer_id: str) -> str:
    session = call(
        "opening the customer portal",
        lambda c: c.v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": settings.BILLING_RETURN_URL}
        ),
    )
    return session.url


def subscription_change_price(*, subscription_id: str, price: str, metadata: dict[str, str], upgrade: bool) -> None:
    """Move the provider subscription to another recurring price. An upgrade is invoiced at once with proration
    and applies only once paid (``pending_if_incomplete``); a downgrade starts with the next period's invoice."""
    current = call("reading the subscription", lambda c: c.v1.subscriptions.retrieve(subscription_id)).to_dict()
    items = (current.get("items") or {}).get("data") or []
    item = next(item for item in items if not _is_metered(item.get("price") or {}))
    params: Any = {"items": [{"id": item["id"], "price": price}], "metadata": metadata}
    if upgrade:
        params |= {"proration_behavior": "always_invoice", "payment_behavior": "pending_if_incomplete"}
    else:
        params |= {"proration_behavior": "none", "cancel_at_period_end": False}
    call("changing the subscription's price", lambda c: c.v1.subscriptions.update(subscription_id, params=params))


def _is_metered(price: dict) -> bool:
    recurring = price.get("recurring") or {}
    return recurring.get("usage_type") == "metered"


def subscription_cancel_at_period_end(*, subscription_id: str, cancel: bool = True) -> None:
    call(
        "scheduling the cancellation",
        lambda c: c.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": cancel}),
    )


def subscription_cancel(*, subscription_id: str) -> None:
    """End the provider subscription now (dunning); one already gone is fine."""
    try:
        call("canceling the subscription", lambda c: c.v1.subscriptions.cancel(subscription_id))
    except PaymentProviderError as exc:
        if isinstance(exc.__cause__, stripe.InvalidRequestError) and exc.__cause__.http_status == 404:
            return
        raise


@dataclass(frozen=True)
class Invoice:
    id: str
    number: str
    status: str
    currency: str
    amount_due: int
    amount_paid: int
    created: int
    period_start: int | None
    period_end: int | None
    hosted_invoice_url: str
    invoice_pdf: str


INVOICES_PER_CALL = 100
INVOICES_MAX = 1000


def invoices_of(*, customer_id: str) -> list[Invoice]:
    """The customer's invoices, newest first: at most :data:`INVOICES_MAX` (ten calls; a monthly customer has 12
    a year), paginated by the API like every list."""
    invoices: list[Invoice] = []
    starting_after: str | None = None
    while len(invoices) < INVOICES_MAX:
        params: dict[str, Any] = {"customer": customer_id, "limit": INVOICES_PER_CALL}
        if starting_after:
            params["starting_after"] = starting_after
        page = call("listing invoices", lambda c, p=params: c.v1.invoices.list(params=p))  # type: ignore[misc]
        for found in page.data:
            item = found.to_dict()
            invoices.append(
                Invoice(
                    id=item["id"],
                    number=item.get("number") or "",
                    status=item.get("status") or "",
                    currency=item.get("currency") or "",
                    amount_due=item.get("amount_due") or 0,
                    amount_paid=item.get("amount_paid") or 0,
                    created=item.get("created") or 0,
                    period_start=item.get("period_start"),
                    period_end=item.get("period_end"),
                    hosted_invoice_url=item.get("hosted_invoice_url") or "",
                    invoice_pdf=item.get("invoice_pdf") or "",
                )
            )
        if not page.has_more or not page.data:
            break
        starting_after = page.data[-1].id
    return invoices[:INVOICES_MAX]


def meter_event_create(*, event_name: str, customer_id: str, value: int, identifier: str) -> None:
    """Report ``value`` units of a meter; the provider counts one ``identifier`` once (a retry is safe)."""
    call(
        "reporting usage",
        lambda c: c.v1.billing.meter_events.create(
            params={
                "event_name": event_name,
                "identifier": identifier,
                "payload": {"stripe_customer_id": customer_id, "value": str(value)},
            }
        ),
    )


def event_from_webhook(*, payload: bytes, signature: str) -> dict[str, Any]:
    """The event a webhook carries, once its ``Stripe-Signature`` verifies with ``STRIPE_WEBHOOK_SECRET`` (the
    library's check: HMAC-SHA256 over ``t.payload``, within five minutes). 400 ``invalid_signature`` otherwise."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise InvalidProviderSignature("No webhook secret is configured here: no provider event is accepted.")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidProviderSignature() from exc
    except ValueError as exc:  # not JSON
        raise InvalidProviderSignature("The body is not a provider event.") from exc
    return event.to_dict()
