"""Fixtures of the payment tests: the local payment provider (stripe_server.py) and an organization paying for
Pro through it."""

from __future__ import annotations

import time

import pytest

from billing.models import Plan, Subscription

from .stripe_server import API_KEY, WEBHOOK_SECRET, StripeServer, event, signed

WEBHOOK = "/api/v1/billing/provider/webhook/"
CHANGE = "/api/v1/billing/subscription/change-plan/"


@pytest.fixture
def stripe_server():
    server = StripeServer().start()
    yield server
    server.stop()


@pytest.fixture
def provider(settings, stripe_server):
    """The provider configured against the local server, and the plans' prices there."""
    settings.STRIPE_API_KEY, settings.STRIPE_WEBHOOK_SECRET = API_KEY, WEBHOOK_SECRET
    settings.STRIPE_API_BASE_URL = stripe_server.url
    settings.STRIPE_TIMEOUT_SECONDS, settings.STRIPE_MAX_NETWORK_RETRIES = 2, 0
    settings.BILLING_GRACE_DAYS = 7
    Plan.objects.filter(code="pro").update(provider_monthly_price="price_pro_m", provider_yearly_price="price_pro_y")
    Plan.objects.filter(code="enterprise").update(
        provider_monthly_price="price_ent_m", provider_yearly_price="price_ent_y"
    )
    return stripe_server


def deliver(client, body: dict, **signing):
    payload, header = signed(body, **signing)
    return client.post(WEBHOOK, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def stored_subscription(org) -> Subscription:
    return Subscription.objects.select_related("plan").get(organization=org)


def checkout(as_owner, org, server: StripeServer, plan: str = "pro", interval: str = "monthly") -> dict:
    """An Owner asks for ``plan``: a checkout session at the provider; the plan does not change yet."""
    response = as_owner.post(CHANGE, {"plan": plan, "interval": interval}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["outcome"] == "checkout"
    [session] = [s for s in server.sessions.values() if s["url"] == body["checkout_url"]]
    return session


def pay(api, org, server: StripeServer, session: dict, *, created: int | None = None) -> dict:
    """The customer pays: the provider makes the subscription and sends ``checkout.session.completed``."""
    metadata = session["metadata"]
    price = {("pro", "monthly"): "price_pro_m", ("pro", "yearly"): "price_pro_y"}.get(
        (metadata["plan"], metadata["interval"]), "price_ent_m"
    )
    provider_subscription = server.add_subscription(customer=session["customer"], price=price, metadata=metadata)
    completed = {**session, "payment_status": "paid", "status": "complete", "subscription": provider_subscription["id"]}
    response = deliver(api, event("checkout.session.completed", completed, created=created))
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "outcome": "applied"}
    return provider_subscription


@pytest.fixture
def paying(api, as_owner_a, org_a, provider):
    """Org A pays for Pro monthly through the provider."""
    session = checkout(as_owner_a, org_a, provider)
    return pay(api, org_a, provider, session, created=int(time.time()) - 60)
