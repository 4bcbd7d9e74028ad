"""A stand-in for the Stripe API (version 2026-10-28.endive shapes), enough for billing:
customers, prices, Checkout Sessions, Customer Portal sessions, subscriptions, billing meter
events (``identifier`` unique: a second event with one is refused as Stripe does; a repeated
``Idempotency-Key`` with the same parameters gets the first answer again). A real HTTP
server on loopback that checks the secret key (``Authorization: Bearer``), decodes Stripe's
form encoding, records every request (method, path, the flat form fields, headers) and keeps
the state those requests build. Tests play Stripe's side too: :meth:`StripeStandIn.complete_checkout`
(the customer paid), :meth:`StripeStandIn.set_subscription` (Stripe changed it), and
:meth:`StripeStandIn.event` / :func:`signature` (a webhook event signed like Stripe signs it:
``t=<unix>,v1=HMAC-SHA256(secret, "<t>." + payload)``)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import LoopbackStandIn, StandInHandler

__all__ = ["StripeStandIn", "Recorded", "signature", "API_VERSION"]

API_VERSION = "2026-10-28.endive"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


def signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class StripeStandIn(LoopbackStandIn):
    quiet_errors = True

    def __init__(self, secret_key: str) -> None:
        self.secret_key = secret_key
        self.requests: list[Recorded] = []
        self.prices: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.meter_events: dict[str, dict[str, Any]] = {}  # by identifier: what would be billed
        self.idempotent: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}  # Idempotency-Key -> first answer
        self.fail_next: list[int] = []  # statuses to answer the next requests with (an outage)
        self._ids = itertools.count(1)
        super().__init__()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:  # noqa: N802
                standin._serve(self)

            def do_POST(self) -> None:  # noqa: N802
                standin._serve(self)

        return Handler

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_test{next(self._ids):06d}"

    # --- Stripe's side ---------------------------------------------------------------------------
    def add_price(self, price_id: str, amount: int = 4900) -> dict[str, Any]:
        price = {"id": price_id, "object": "price", "active": True, "currency": "eur", "unit_amount": amount,
                 "type": "recurring", "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
                 "livemode": False, "metadata": {}, "product": "prod_test"}
        self.prices[price_id] = price
        return price

    def complete_checkout(self, session_id: str, *, status: str = "active") -> dict[str, Any]:
        """The customer paid: a customer and a subscription on the session's price; returns the session."""
        with self._lock:
            session = self.sessions[session_id]
            customer = {"id": self.new_id("cus"), "object": "customer", "email": session["customer_email"],
                        "created": int(time.time()), "livemode": False, "metadata": {}}
            self.customers[customer["id"]] = customer
            price = self.prices[session["_price"]]
            now = int(time.time())
            sub_id = self.new_id("sub")
            self.subscriptions[sub_id] = {
                "id": sub_id, "object": "subscription", "customer": customer["id"], "status": status,
                "cancel_at_period_end": False, "canceled_at": None, "created": now, "livemode": False,
                "metadata": {}, "items": {"object": "list", "has_more": False,
                                          "url": f"/v1/subscription_items?subscription={sub_id}", "data": [
                    {"id": self.new_id("si"), "object": "subscription_item", "price": price, "quantity": 1,
                     "subscription": sub_id, "current_period_start": now, "current_period_end": now + 30 * 86400}]},
            }
            session.update(status="complete", payment_status="paid", customer=customer["id"], subscription=sub_id)
            return self._public(session)

    def set_subscription(self, sub_id: str, *, status: str | None = None, price: str | None = None) -> dict[str, Any]:
        with self._lock:
            sub = self.subscriptions[sub_id]
            if status is not None:
                sub["status"] = status
                if status == "canceled":
                    sub["canceled_at"] = int(time.time())
            if price is not None:
                sub["items"]["data"][0]["price"] = self.prices[price]
            return json.loads(json.dumps(sub))

    def event(self, kind: str, obj: dict[str, Any], *, event_id: str | None = None) -> tuple[str, bytes]:
        """A webhook event as Stripe sends it (snapshot payload); returns (id, body bytes)."""
        event_id = event_id or self.new_id("evt")
        body = {"id": event_id, "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "type": kind}
        return event_id, json.dumps(body).encode()

    # --- HTTP ------------------------------------------------------------------------------------
    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in json.loads(json.dumps(obj)).items() if not k.startswith("_")}

    def _serve(self, handler: StandInHandler) -> None:
        raw = handler.read_body().decode()
        url = urllib.parse.urlsplit(handler.path)
        form = dict(urllib.parse.parse_qsl(raw or url.query, keep_blank_values=True))
        self.requests.append(Recorded(handler.command, url.path, form, handler.lower_headers()))
        key = handler.headers.get("Idempotency-Key")
        with self._lock:
            first = self.idempotent.get(key) if key and handler.command == "POST" else None
        if first is not None and first[0] == form:
            status, body = first[1], first[2]
        elif first is not None:
            status, body = 400, _error("idempotency_error", "Keys for idempotent requests can only be used with "
                                       "the same parameters they were first used with.")
        else:
            status, body = self._route(handler.command, url.path, form, handler.headers.get("Authorization", ""))
            if key and handler.command == "POST" and status < 500:
                with self._lock:
                    self.idempotent[key] = (form, status, body)
        handler.send_json(status, body, headers={"Request-Id": f"req_{next(self._ids)}"})

    def _route(self, method: str, path: str, form: dict[str, str], auth: str) -> tuple[int, dict[str, Any]]:
        if self.fail_next:
            return self.fail_next.pop(0), _error("api_error", "An unknown error occurred")
        if auth != f"Bearer {self.secret_key}":
            return 401, _error("invalid_request_error", "Invalid API Key provided")
        parts = path.strip("/").split("/")
        with self._lock:
            if method == "POST" and parts == ["v1", "checkout", "sessions"]:
                return self._create_session(form)
            if method == "POST" and parts == ["v1", "billing_portal", "sessions"]:
                if form.get("customer") not in self.customers:
                    return 400, _error("invalid_request_error", f"No such customer: '{form.get('customer')}'", "customer")
                return 200, {"id": self.new_id("bps"), "object": "billing_portal.session", "customer": form["customer"],
                             "return_url": form.get("return_url"), "created": int(time.time()), "livemode": False,
                             "url": f"https://billing.stripe.com/p/session/{self.new_id('test')}"}
            if method == "POST" and parts == ["v1", "billing", "meter_events"]:
                return self._meter_event(form)
            if method == "POST" and parts == ["v1", "customers"]:
                customer = {"id": self.new_id("cus"), "object": "customer", "email": form.get("email"),
                            "created": int(time.time()), "livemode": False, "metadata": {}}
                self.customers[customer["id"]] = customer
                return 200, customer
            if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "subscriptions"]:
                return self._get(self.subscriptions, parts[2], "subscription")
            if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "prices"]:
                return self._get(self.prices, parts[2], "price")
            if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "customers"]:
                return self._get(self.customers, parts[2], "customer")
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _get(self, table: dict[str, dict[str, Any]], key: str, what: str) -> tuple[int, dict[str, Any]]:
        if key not in table:
            return 404, _error("invalid_request_error", f"No such {what}: '{key}'", "id", code="resource_missing")
        return 200, self._public(table[key])

    def _create_session(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        price = form.get("line_items[0][price]")
        if form.get("mode") != "subscription" or price not in self.prices:
            return 400, _error("invalid_request_error", f"No such price: '{price}'", "line_items[0][price]")
        session_id = self.new_id("cs")
        session = {
            "id": session_id, "object": "checkout.session", "mode": "subscription", "status": "open",
            "payment_status": "unpaid", "client_reference_id": form.get("client_reference_id"),
            "customer": None, "customer_email": form.get("customer_email"), "subscription": None,
            "success_url": form.get("success_url"), "cancel_url": form.get("cancel_url"),
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "created": int(time.time()), "livemode": False,
            "url": f"https://checkout.stripe.com/c/pay/{session_id}", "_price": price,
        }
        self.sessions[session_id] = session
        return 200, self._public(session)


    def _meter_event(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``POST /v1/billing/meter_events``: ``event_name``, ``payload[...]`` with the customer
        and a whole-number ``value``, optional ``identifier`` (unique) and ``timestamp``."""
        payload = {k[8:-1]: v for k, v in form.items() if k.startswith("payload[")}
        if not form.get("event_name"):
            return 400, _error("invalid_request_error", "Missing required param: event_name.", "event_name")
        if payload.get("stripe_customer_id") not in self.customers:
            return 400, _error("invalid_request_error", f"No such customer: '{payload.get('stripe_customer_id')}'",
                               "payload[stripe_customer_id]")
        if not payload.get("value", "").isdigit():
            return 400, _error("invalid_request_error", "payload[value] must be a whole number", "payload[value]")
        identifier = form.get("identifier") or self.new_id("mev")
        if identifier in self.meter_events:
            return 400, _error("invalid_request_error", f"An event already exists with identifier {identifier}.",
                               "identifier", code="duplicate_meter_event")
        event = {"object": "billing.meter_event", "created": int(time.time()), "event_name": form["event_name"],
                 "identifier": identifier, "livemode": False, "payload": payload,
                 "timestamp": int(form.get("timestamp") or time.time())}
        self.meter_events[identifier] = event
        return 200, event


def _error(kind: str, message: str, param: str | None = None, *, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if param:
        error["param"] = param
    if code:
        error["code"] = code
    return {"error": error}
