"""A local stand-in for the payment provider (Stripe), on loopback: an HTTP server speaking the part of its API the
product calls through the real ``stripe`` library (form-encoded requests, bearer key, JSON objects), and a signer
of webhook events with the provider's scheme (``Stripe-Signature: t=...,v1=<HMAC-SHA256 of "t.body">``, computed
by ``stripe.WebhookSignature``).

Calls served: customers, checkout sessions, billing-portal sessions, subscriptions (retrieve, update, cancel),
invoices (list, with cursor pagination) and billing meter events (deduplicated by identifier). ``fail_next`` makes
the next requests answer 500; ``hang`` makes them wait past the client's timeout.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import stripe

from ..campaigns.servers import free_port

API_KEY = "sk_test_local"
WEBHOOK_SECRET = "whsec_local_test_secret"


class StripeServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, form or query)
        self.customers: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.invoices: list[dict] = []
        self.meter_events: dict[str, dict] = {}
        self.fail_next = 0
        self.hang = 0.0
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    # --- test helpers ---

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def calls(self, method: str, path_prefix: str) -> list[dict[str, str]]:
        with self.lock:
            return [form for m, path, form in self.requests if m == method and path.startswith(path_prefix)]

    def add_subscription(
        self, *, customer: str, price: str, status: str = "active", metadata=None, period_start=None, period_end=None
    ) -> dict:
        now = int(time.time())
        sub_id = self.new_id("sub")
        start = period_start or now
        subscription = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "cancel_at_period_end": False,
            "metadata": dict(metadata or {}),
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": self.new_id("si"),
                        "object": "subscription_item",
                        "price": {"id": price, "object": "price", "recurring": {"usage_type": "licensed"}},
                        "current_period_start": start,
                        "current_period_end": period_end or start + 30 * 86400,
                    }
                ],
            },
        }
        with self.lock:
            self.subscriptions[sub_id] = subscription
        return subscription

    # --- the server ---

    def start(self) -> StripeServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_local")
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else parts.query
                form = {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True).items()}
                with owner.lock:
                    owner.requests.append((method, parts.path, form))
                    failing = owner.fail_next > 0
                    owner.fail_next = max(0, owner.fail_next - 1)
                    hang = owner.hang
                if hang:
                    time.sleep(hang)
                if failing:
                    return self._answer(500, {"error": {"type": "api_error", "message": "Something went wrong."}})
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self._answer(401, {"error": {"type": "invalid_request_error", "message": "Invalid key"}})
                status, body = owner.route(method, parts.path, form)
                return self._answer(status, body)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @staticmethod
    def _metadata(form: dict[str, str], prefix: str = "metadata") -> dict[str, str]:
        return {key[len(prefix) + 1 : -1]: value for key, value in form.items() if key.startswith(f"{prefix}[")}

    def route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:  # noqa: C901
        missing = (
            404,
            {"error": {"type": "invalid_request_error", "message": "No such object", "code": "resource_missing"}},
        )
        if method == "POST" and path == "/v1/customers":
            customer = {
                "id": self.new_id("cus"),
                "object": "customer",
                "email": form.get("email", ""),
                "name": form.get("name", ""),
            }
            customer["metadata"] = self._metadata(form)
            self.customers[customer["id"]] = customer
            return 200, customer
        if method == "POST" and path == "/v1/checkout/sessions":
            session_id = self.new_id("cs")
            session = {
                "id": session_id,
                "object": "checkout.session",
                "mode": form.get("mode"),
                "customer": form.get("customer"),
                "client_reference_id": form.get("client_reference_id"),
                "metadata": self._metadata(form),
                "url": f"{self.url}/pay/{session_id}",
                "payment_status": "unpaid",
                "status": "open",
            }
            self.sessions[session_id] = session
            return 200, session
        if method == "POST" and path == "/v1/billing_portal/sessions":
            if form.get("customer") not in self.customers:
                return missing
            return 200, {
                "id": self.new_id("bps"),
                "object": "billing_portal.session",
                "url": f"{self.url}/portal/{form['customer']}",
            }
        if path.startswith("/v1/subscriptions/"):
            subscription = self.subscriptions.get(path.rsplit("/", 1)[1])
            if subscription is None:
                return missing
            if method == "GET":
                return 200, subscription
            if method == "DELETE":
                subscription["status"] = "canceled"
                return 200, subscription
            if "cancel_at_period_end" in form:
                subscription["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
            if "items[0][price]" in form:
                subscription["items"]["data"][0]["price"] = {
                    "id": form["items[0][price]"],
                    "object": "price",
                    "recurring": {"usage_type": "licensed"},
                }
            subscription["metadata"].update(self._metadata(form))
            return 200, subscription
        if method == "GET" and path == "/v1/invoices":
            mine = [invoice for invoice in self.invoices if invoice["customer"] == form.get("customer")]
            if form.get("starting_after"):
                index = next(i for i, invoice in enumerate(mine) if invoice["id"] == form["starting_after"])
                mine = mine[index + 1 :]
            limit = int(form.get("limit") or 10)
            return 200, {"object": "list", "url": "/v1/invoices", "data": mine[:limit], "has_more": len(mine) > limit}
        if method == "POST" and path == "/v1/billing/meter_events":
            identifier = form.get("identifier") or self.new_id("mev")
            self.meter_events.setdefault(
                identifier,
                {
                    "event_name": form.get("event_name"),
                    "customer": form.get("payload[stripe_customer_id]"),
                    "value": int(form.get("payload[value]") or 0),
                },
            )
            return 200, {
                "object": "billing.meter_event",
                "identifier": identifier,
                "event_name": form.get("event_name"),
            }
        return missing


def add_invoices(server: StripeServer, customer: str, count: int) -> list[dict]:
    now = int(time.time())
    made = []
    for index in range(count):
        made.append(
            {
                "id": server.new_id("in"),
                "object": "invoice",
                "customer": customer,
                "number": f"INV-{index + 1:04d}",
                "status": "paid",
                "currency": "usd",
                "amount_due": 4900,
                "amount_paid": 4900,
                "created": now - index * 86400 * 30,
                "period_start": now - (index + 1) * 86400 * 30,
                "period_end": now - index * 86400 * 30,
                "hosted_invoice_url": f"{server.url}/i/{index}",
                "invoice_pdf": f"{server.url}/i/{index}.pdf",
            }
        )
    server.invoices.extend(made)
    return made


_event_ids = itertools.count(1)


def event(event_type: str, obj: dict, *, created: int | None = None, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{next(_event_ids):06d}_{int(time.time() * 1000)}",
        "object": "event",
        "type": event_type,
        "created": created if created is not None else int(time.time()),
        "api_version": stripe.api_version,
        "livemode": False,
        "data": {"object": obj},
    }


def signed(body: dict | str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[str, str]:
    """The body as the provider sends it, and its ``Stripe-Signature`` header."""
    payload = body if isinstance(body, str) else json.dumps(body)
    return payload, stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
