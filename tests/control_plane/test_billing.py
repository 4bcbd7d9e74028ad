"""Stripe billing through the real ``stripe`` SDK against a local Stripe stand-in, with a real
control plane and real appliance processes: checkout and portal sessions (the exact requests),
signed webhook events (forged, stale, replayed, reordered), provisioning on the paid plan, plan
changes pushed as entitlements, past_due grace then suspension, cancellation (stopped, deleted
30 days out), invoices kept 7 years, and a Stripe outage answered 503 until Stripe redelivers.

One control plane and one paying tenant serve the module; the tests run in file order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from control_plane.billing import store as billing_store
from control_plane.lifecycle.tasks import sweep_once
from tests.control_plane.harness import ControlPlaneServer, wait_for
from tests.control_plane.standins.stripe_api import API_VERSION, StripeStandIn, signature

pytestmark = pytest.mark.timeout(300)

SK = "sk_test_billing_51Hx"
WHSEC = "whsec_test_billing_Qp7"
SEED = "YmlsbGluZy10ZXN0LXNlZWQtZm9yLWVkMjU1MTktMzI="
PLANS = ('[{"id": "starter", "stripe_price": "price_starter", "limits": {"contacts": 1000, "seats": 2}},'
         ' {"id": "growth", "stripe_price": "price_growth", "limits": {"contacts": 25000, "seats": 10}},'
         ' {"id": "internal", "stripe_price": null, "limits": {}}]')


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[StripeStandIn]:
    standin = StripeStandIn(SK).start()
    standin.add_price("price_starter", 2900)
    standin.add_price("price_growth", 9900)
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, stripe_api: StripeStandIn) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("billing"), "http://127.0.0.1:9", plans=PLANS,
                                entitlements_key=SEED, stripe_api_base=stripe_api.base_url, stripe_secret_key=SK,
                                stripe_webhook_secret=WHSEC, retention_days=30, billing_grace_days=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    return {}


def post_event(cp: ControlPlaneServer, body: bytes, header: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Stripe-Signature": header or signature(body, WHSEC)}
    return httpx.post(cp.base_url + "/webhooks/stripe", content=body, headers=headers, timeout=30)


def send(cp: ControlPlaneServer, stripe_api: StripeStandIn, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    _, body = stripe_api.event(kind, obj)
    response = post_event(cp, body)
    assert response.status_code == 200, response.text
    return response.json()


def read(cp: ControlPlaneServer, fn: Any, *args: Any) -> Any:
    return cp.run(cp.cp.store.gateway.read(fn, *args))


def rejected(cp: ControlPlaneServer) -> float:
    """The counter a refused Stripe event leaves (and nothing else)."""
    for line in httpx.get(cp.base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith('aat_cp_webhooks_rejected_total{reason="stripe_signature"}'):
            return float(line.split()[-1])
    return 0.0


def plan_in_appliance(cp: ControlPlaneServer, tenant_id: str, plan: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        with cp.tenant_api(tenant_id) as api:
            found = api.get("/api/v1/entitlements").json()
        return found if found["plan"] == plan else None

    return wait_for(check, timeout=60, what=f"{tenant_id}'s appliance to be on {plan}")


@pytest.fixture(scope="module")
def owner(cp: ControlPlaneServer) -> dict[str, str]:
    """The signed-in account that buys the module's plan (headers; its id under "id")."""
    return cp.account("owner@bakery.example")


def test_checkout_needs_a_signed_in_account(cp: ControlPlaneServer, stripe_api: StripeStandIn) -> None:
    before = len(stripe_api.requests)
    response = httpx.post(cp.base_url + "/billing/checkout", json={"plan": "starter", "name": "Bakery Blum"}, timeout=30)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "not_signed_in")
    assert len(stripe_api.requests) == before


def test_checkout_creates_a_subscription_session(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                 state: dict[str, Any], owner: dict[str, str]) -> None:
    headers = {k: v for k, v in owner.items() if k != "id"}
    response = httpx.post(cp.base_url + "/billing/checkout", timeout=30, headers=headers,
                          json={"plan": "starter", "name": "Bakery Blum"})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["url"] == f"https://checkout.stripe.com/c/pay/{answer['id']}"
    sent = stripe_api.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/checkout/sessions")
    assert sent.form == {
        "mode": "subscription", "client_reference_id": owner["id"], "line_items[0][price]": "price_starter",
        "line_items[0][quantity]": "1", "customer_email": "owner@bakery.example", "metadata[plan]": "starter",
        "success_url": cp.base_url + "/billing/done?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": cp.base_url + "/billing/canceled",
    }
    assert sent.headers["authorization"] == f"Bearer {SK}"
    assert sent.headers["stripe-version"] == API_VERSION
    signup = read(cp, billing_store.signup_by_session, answer["id"])
    assert (signup["account_id"], signup["name"], signup["plan"]) == (owner["id"], "Bakery Blum", "starter")
    state["session"] = answer["id"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"plan": "platinum", "name": "X"}, 422, "unknown_plan"),
    ({"plan": "internal", "name": "X"}, 422, "plan_not_for_sale"),
    ({"plan": "starter", "name": "X", "email": "not-an-email"}, 422, "invalid_request"),
    ({"plan": "starter"}, 422, "invalid_request"),
])
def test_bad_checkouts_are_refused_without_calling_stripe(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                         body: dict[str, Any], status: int, code: str,
                                                         owner: dict[str, str]) -> None:
    before = len(stripe_api.requests)
    response = httpx.post(cp.base_url + "/billing/checkout", json=body, timeout=30,
                          headers={k: v for k, v in owner.items() if k != "id"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert len(stripe_api.requests) == before


@pytest.mark.parametrize("how", ["forged", "stale", "missing", "tampered"])
def test_forged_stale_and_tampered_events_are_refused(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                      how: str) -> None:
    event_id, body = stripe_api.event("customer.subscription.deleted", {"id": "sub_whatever", "object": "subscription"})
    header = {"forged": signature(body, "whsec_someone_else"), "stale": signature(body, WHSEC, int(time.time()) - 301),
              "missing": "", "tampered": signature(body, WHSEC)}[how]
    if how == "tampered":
        body = body.replace(b"sub_whatever", b"sub_other000")
    before, rejected_before = len(stripe_api.requests), rejected(cp)
    response = httpx.post(cp.base_url + "/webhooks/stripe", content=body, timeout=30,
                          headers={"Content-Type": "application/json", "Stripe-Signature": header})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert read(cp, billing_store.event_seen, event_id) is False
    assert len(stripe_api.requests) == before
    assert rejected(cp) == rejected_before + 1


def test_a_completed_checkout_provisions_a_tenant_on_its_plan(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                              state: dict[str, Any]) -> None:
    session = stripe_api.complete_checkout(state["session"])
    event_id, body = stripe_api.event("checkout.session.completed", session)
    response = post_event(cp, body)
    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome.startswith("provisioned t") and outcome.endswith(" on starter")
    tenant_id = outcome.split()[1]
    assert (stripe_api.requests[-1].method, stripe_api.requests[-1].path) == ("GET", f"/v1/subscriptions/{session['subscription']}")
    row = cp.wait_status(tenant_id, "active")
    assert (row["name"], row["owner_email"], row["plan"]) == ("Bakery Blum", "owner@bakery.example", "starter")
    assert plan_in_appliance(cp, tenant_id, "starter")["limits"] == {"contacts": 1000, "seats": 2}
    sub = read(cp, billing_store.get_subscription, tenant_id)
    assert (sub["subscription_id"], sub["customer_id"], sub["status"]) == (session["subscription"], session["customer"], "active")
    state.update(tenant=tenant_id, sub=session["subscription"], customer=session["customer"], checkout=(event_id, body))


def test_a_replayed_event_changes_nothing(cp: ControlPlaneServer, stripe_api: StripeStandIn, state: dict[str, Any]) -> None:
    event_id, body = state["checkout"]
    tenants_before = cp.ok("GET", "/tenants")["items"]
    requests_before = len(stripe_api.requests)
    response = post_event(cp, body)
    assert response.status_code == 200
    assert response.json() == {"status": "duplicate", "id": event_id}
    assert cp.ok("GET", "/tenants")["items"] == tenants_before
    assert len(stripe_api.requests) == requests_before


def test_a_plan_change_is_pushed_to_the_appliance(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                  state: dict[str, Any]) -> None:
    sub = stripe_api.set_subscription(state["sub"], price="price_growth")
    state["starter_snapshot"] = {**sub, "items": {**sub["items"], "data": [
        {**sub["items"]["data"][0], "price": stripe_api.prices["price_starter"]}]}}
    assert send(cp, stripe_api, "customer.subscription.updated", sub)["outcome"] == "active, plan growth"
    assert plan_in_appliance(cp, state["tenant"], "growth")["limits"] == {"contacts": 25000, "seats": 10}


def test_a_late_older_event_applies_stripes_current_state(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                          state: dict[str, Any]) -> None:
    """The snapshot says starter (it was sent before the upgrade); Stripe says growth now."""
    answer = send(cp, stripe_api, "customer.subscription.updated", state["starter_snapshot"])
    assert answer["outcome"] == "active"
    assert stripe_api.requests[-1].path == f"/v1/subscriptions/{state['sub']}"
    assert cp.ok("GET", f"/tenants/{state['tenant']}")["plan"] == "growth"


def test_past_due_gets_a_grace_then_suspension_and_payment_resumes(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                                   state: dict[str, Any]) -> None:
    tenant_id = state["tenant"]
    stripe_api.set_subscription(state["sub"], status="past_due")
    invoice = {"id": "in_test_failed1", "object": "invoice", "customer": state["customer"], "amount_due": 9900,
               "amount_paid": 0, "currency": "eur", "status": "open"}
    assert send(cp, stripe_api, "invoice.payment_failed", invoice)["outcome"].startswith("recorded; past_due, grace since ")
    assert cp.ok("GET", f"/tenants/{tenant_id}")["status"] == "active"
    time.sleep(0.01)
    assert cp.run(sweep_once(cp.cp))["suspended_past_grace"] == 1  # AAT_CP_BILLING_GRACE_DAYS=0 here
    cp.wait_status(tenant_id, "suspended")
    stripe_api.set_subscription(state["sub"], status="active")
    paid = {**invoice, "id": "in_test_paid1", "amount_paid": 9900, "status": "paid"}
    assert send(cp, stripe_api, "invoice.paid", paid)["outcome"] == "recorded; active, tenant active"
    cp.wait_status(tenant_id, "active")
    history = read(cp, billing_store.history, tenant_id)
    assert [(h["invoice_id"], h["event_type"], h["amount_cents"], h["currency"]) for h in history] == [
        ("in_test_failed1", "invoice.payment_failed", 9900, "eur"), ("in_test_paid1", "invoice.paid", 9900, "eur")]
    kept = datetime.fromisoformat(history[1]["keep_until"].replace("Z", "+00:00")) - datetime.now(UTC)
    assert timedelta(days=7 * 365) < kept < timedelta(days=7 * 367)
    assert [(e.to, e.subject) for e in list(cp.cp.notifier.sent)[-2:]] == [
        ("owner@bakery.example", "Payment failed for Bakery Blum"),
        ("owner@bakery.example", "Payment received for Bakery Blum")]
    assert "99.00 EUR" in cp.cp.notifier.sent[-1].text


def test_the_portal_opens_for_the_tenants_customer(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                   state: dict[str, Any]) -> None:
    assert httpx.post(cp.base_url + "/billing/portal", json={"tenant_id": state["tenant"]}, timeout=30,
                      headers={"Authorization": "Bearer not-an-admin-token"}).status_code == 401
    assert cp.http.post("/billing/portal", json={}).status_code == 422  # an admin names the tenant
    answer = cp.http.post("/billing/portal", json={"tenant_id": state["tenant"]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["url"].startswith("https://billing.stripe.com/p/session/")
    sent = stripe_api.requests[-1]
    assert (sent.method, sent.path, sent.form) == ("POST", "/v1/billing_portal/sessions",
                                                   {"customer": state["customer"], "return_url": cp.base_url + "/"})


def test_a_signed_in_account_opens_its_own_portal_only(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                       state: dict[str, Any], owner: dict[str, str]) -> None:
    mine = {k: v for k, v in owner.items() if k != "id"}
    answer = httpx.post(cp.base_url + "/billing/portal", headers=mine, timeout=30)
    assert answer.status_code == 201, answer.text
    sent = stripe_api.requests[-1]
    assert (sent.method, sent.path, sent.form) == ("POST", "/v1/billing_portal/sessions",
                                                   {"customer": state["customer"], "return_url": cp.base_url + "/"})
    assert answer.json()["url"].startswith("https://billing.stripe.com/p/session/")
    named = httpx.post(cp.base_url + "/billing/portal", headers=mine, json={"tenant_id": state["tenant"]}, timeout=30)
    assert (named.status_code, stripe_api.requests[-1].form["customer"]) == (201, state["customer"])

    other = {k: v for k, v in cp.account("someone-else@example.com").items() if k != "id"}
    before = len(stripe_api.requests)
    refusals = [
        (httpx.post(cp.base_url + "/billing/portal", timeout=30), 401, "not_signed_in"),
        (httpx.post(cp.base_url + "/billing/portal", headers={"Cookie": mine["Cookie"]}, timeout=30), 403, "csrf_failed"),
        (httpx.post(cp.base_url + "/billing/portal", headers=other, timeout=30), 409, "no_stripe_customer"),
        (httpx.post(cp.base_url + "/billing/portal", headers=other, json={"tenant_id": state["tenant"]}, timeout=30),
         404, "not_found"),
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r, _, _ in refusals] == [(s, c) for _, s, c in refusals]
    assert "no Stripe customer yet" in refusals[2][0].json()["error"]["message"]
    assert len(stripe_api.requests) == before


def test_a_stripe_outage_is_503_and_the_redelivery_is_handled(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                               state: dict[str, Any]) -> None:
    sub = stripe_api.set_subscription(state["sub"], status="active")
    event_id, body = stripe_api.event("customer.subscription.updated", sub)
    stripe_api.fail_next = [500, 500, 500]  # the SDK tries three times
    response = post_event(cp, body)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "stripe_unavailable"
    assert read(cp, billing_store.event_seen, event_id) is False
    again = post_event(cp, body)
    assert (again.status_code, again.json()["status"]) == (200, "processed")


def test_cancellation_stops_the_tenant_and_schedules_deletion_30_days_out(cp: ControlPlaneServer,
                                                                          stripe_api: StripeStandIn,
                                                                          state: dict[str, Any]) -> None:
    tenant_id = state["tenant"]
    sub = stripe_api.set_subscription(state["sub"], status="canceled")
    assert send(cp, stripe_api, "customer.subscription.deleted", sub)["outcome"] == "canceled, tenant deleting"
    row = cp.wait_status(tenant_id, "deleting")
    left = datetime.fromisoformat(row["delete_after"].replace("Z", "+00:00")) - datetime.now(UTC)
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    notice = cp.cp.notifier.sent[-1]
    assert (notice.to, notice.subject) == ("owner@bakery.example", f"Bakery Blum will be deleted on {row['delete_after'][:10]}")
    wait_for(lambda: cp.cp.provisioner.pid(tenant_id) is None, what="the appliance to stop")
    assert read(cp, billing_store.get_subscription, tenant_id)["canceled_at"] is not None
    # an update delivered after the deletion (reordered) retrieves "canceled" and changes nothing
    assert send(cp, stripe_api, "customer.subscription.updated", {**sub, "status": "active"})["outcome"] == "canceled"
    assert cp.ok("GET", f"/tenants/{tenant_id}")["status"] == "deleting"
