"""Signed usage reports (``POST /usage/reports``) to a real control plane, which verifies (HMAC under the tenant's derived key, 300 s, replay, order),
records per tenant and month, shows them in the admin API, and sends overage to the Stripe
stand-in as billing meter events through the SDK (exact requests; a retry never bills twice).

One control plane and one Stripe stand-in serve the module. The refusal and overage tests use a
tenant row written straight into the store (no appliance process: they are about the control
plane's side). A real appliance's report: test_entitlements_push (which has one running)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from appliance.audit import Actor
from appliance.entitlements.report import HEADER, signature
from appliance.timeutil import iso_now, to_iso, utcnow
from control_plane.billing import store as billing_store
from control_plane.lifecycle.service import new_tenant_row, unseal
from control_plane.usage import store as usage_store
from control_plane.usage.meter import Overage
from control_plane.usage.reports import UsageReports
from tests.control_plane.harness import ControlPlaneServer
from tests.control_plane.standins.stripe_api import API_VERSION, StripeStandIn

pytestmark = pytest.mark.timeout(240)

SK, WHSEC = "sk_test_usage_7Tq", "whsec_usage_2Lm"
PLANS = ('[{"id": "metered", "stripe_price": "price_metered", "limits": {"contacts": 100, '
         '"ai_replies_per_month": 50, "seats": 2}}]')
METERS = '{"ai_replies": "aat_ai_reply_overage", "contacts": "aat_contact_overage"}'
ZERO = {"contacts": 0, "automated_contacts": 0, "ai_replies": 0, "seats": 0, "channels": 0, "messages": 0}


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[StripeStandIn]:
    standin = StripeStandIn(SK).start()
    standin.add_price("price_metered")
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, stripe_api: StripeStandIn) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("usage"), "http://127.0.0.1:9", plans=PLANS,
                                stripe_meters=METERS, stripe_api_base=stripe_api.base_url, stripe_secret_key=SK,
                                stripe_webhook_secret=WHSEC).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tenant(cp: ControlPlaneServer, stripe_api: StripeStandIn) -> tuple[str, str, str]:
    """(tenant id, its webhook secret, its Stripe customer): a paying tenant on ``metered``."""
    assert cp.cp is not None
    customer = stripe_api.new_id("cus")
    stripe_api.customers[customer] = {"id": customer, "object": "customer", "email": "m@example.com",
                                      "created": 0, "livemode": False, "metadata": {}}

    def write(db: Any) -> dict[str, Any]:
        row = new_tenant_row(db, cp.cp.store.fields, name="Metered Shop", provisioner="local", owner_email=None,
                             plan="metered", actor=Actor("system", label="tests"))
        billing_store.upsert_subscription(db, tenant_id=row["id"], customer_id=customer, subscription_id="sub_usage1",
                                          status="active", price_id="price_metered", past_due_since=None,
                                          canceled_at=None, now=iso_now())
        return row

    row = cp.run(cp.cp.store.gateway.write(write))
    return row["id"], unseal(cp.cp.store.fields, "webhook_secret", row["id"], row["webhook_secret_enc"]), customer


def report(tenant_id: str, usage: dict[str, int] | None = None, *, seconds: float = 0.0, **fields: Any) -> bytes:
    moment = utcnow() + timedelta(seconds=seconds)
    body = {"tenant": tenant_id, "report_id": secrets.token_hex(16), "issued_at": to_iso(moment),
            "period": moment.strftime("%Y-%m"), "usage": {**ZERO, **(usage or {})}, **fields}
    return json.dumps(body, separators=(",", ":")).encode()


def post(cp: ControlPlaneServer, body: bytes, secret: str | None, header: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None or secret is not None:
        headers[HEADER] = header if header is not None else signature(body, secret)  # type: ignore[arg-type]
    return httpx.post(cp.base_url + "/usage/reports", content=body, headers=headers, timeout=30)


def stored(cp: ControlPlaneServer, tenant_id: str) -> list[dict[str, Any]]:
    return cp.ok("GET", f"/tenants/{tenant_id}/usage", params={"limit": 500})["reports"]


def meter_posts(stripe_api: StripeStandIn, since: int) -> list[Any]:
    return [r for r in stripe_api.requests[since:] if r.path == "/v1/billing/meter_events"]


def test_a_signed_report_is_recorded_and_shown_to_admins(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                         tenant: tuple[str, str, str]) -> None:
    tenant_id, secret, _ = tenant
    numbers = {"contacts": 80, "automated_contacts": 80, "ai_replies": 12, "seats": 2, "channels": 1, "messages": 345}
    body = report(tenant_id, numbers)
    before = len(stripe_api.requests)
    answer = post(cp, body, secret)
    assert answer.status_code == 200, answer.text
    sent = json.loads(body)
    assert answer.json() == {"status": "recorded", "report_id": sent["report_id"], "period": sent["period"],
                             "meter_events": []}  # within the plan's limits
    assert meter_posts(stripe_api, before) == []
    shown = cp.ok("GET", f"/tenants/{tenant_id}/usage", params={"period": sent["period"]})
    assert shown["meter_events"] == []
    [row] = shown["reports"]
    assert {k: row[k] for k in (*ZERO, "report_id", "period", "tenant_id")} == {
        **numbers, "report_id": sent["report_id"], "period": sent["period"], "tenant_id": tenant_id}
    assert cp.admin("GET", f"/tenants/{tenant_id}/usage").status_code == 200
    assert httpx.get(cp.base_url + f"/admin/api/tenants/{tenant_id}/usage", timeout=10).status_code == 401
    assert cp.admin("GET", "/tenants/t000000000000/usage").status_code == 404


@pytest.mark.parametrize(("how", "status", "code"), [
    ("other key", 403, "invalid_signature"),
    ("tampered", 403, "invalid_signature"),
    ("unsigned", 403, "invalid_signature"),
    ("unknown tenant", 403, "invalid_signature"),
    ("from the past", 403, "stale_report"),
    ("from the future", 403, "stale_report"),
    ("replayed", 409, "replayed_report"),
    ("older than the last", 409, "out_of_order_report"),
    ("wrong period", 422, "wrong_period"),
    ("negative count", 422, "invalid_request"),
    ("not json", 400, "invalid_json"),
])
def test_forged_stale_replayed_and_malformed_reports_are_refused(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                                 tenant: tuple[str, str, str], how: str, status: int,
                                                                 code: str) -> None:
    tenant_id, secret, _ = tenant
    accepted = report(tenant_id, {"ai_replies": 1})
    assert post(cp, accepted, secret).status_code == 200  # the tenant's latest, for "replayed" and "older"
    body, key, header = report(tenant_id, {"ai_replies": 2}), secret, None
    if how == "other key":
        key = "someone-elses-secret"
    elif how == "tampered":
        header = signature(body, secret)
        body = body.replace(b'"ai_replies":2', b'"ai_replies":0')
    elif how == "unsigned":
        key = None
    elif how == "unknown tenant":
        body = report("t0123456789ab")
    elif how == "from the past":
        body = report(tenant_id, seconds=-301)
    elif how == "from the future":
        body = report(tenant_id, seconds=301)
    elif how == "replayed":
        body = accepted
    elif how == "older than the last":
        body = report(tenant_id, seconds=-60)
    elif how == "wrong period":
        body = report(tenant_id, period="2001-01")
    elif how == "negative count":
        body = report(tenant_id, {"messages": -1})
    elif how == "not json":
        body = b"contacts=1"
    before, requests = stored(cp, tenant_id), len(stripe_api.requests)
    answer = post(cp, body, key, header)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert answer.json()["error"]["message"]
    assert stored(cp, tenant_id) == before
    assert len(stripe_api.requests) == requests


def test_overage_is_sent_to_stripe_meters_once(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                               tenant: tuple[str, str, str]) -> None:
    tenant_id, secret, customer = tenant
    period = utcnow().strftime("%Y-%m")
    before = len(stripe_api.requests)
    answer = post(cp, report(tenant_id, {"ai_replies": 70, "contacts": 90}), secret)  # AI replies limit 50
    assert answer.status_code == 200, answer.text
    [sent] = meter_posts(stripe_api, before)
    identifier = f"{tenant_id}-{period}-ai_replies-20"
    assert sent.form == {"event_name": "aat_ai_reply_overage", "identifier": identifier,
                         "payload[stripe_customer_id]": customer, "payload[value]": "20"}
    assert (sent.method, sent.headers["idempotency-key"], sent.headers["authorization"],
            sent.headers["stripe-version"]) == ("POST", identifier, f"Bearer {SK}", API_VERSION)
    assert [e["identifier"] for e in answer.json()["meter_events"]] == [identifier]

    before = len(stripe_api.requests)
    assert post(cp, report(tenant_id, {"ai_replies": 70, "contacts": 90}), secret).json()["meter_events"] == []
    assert post(cp, report(tenant_id, {"ai_replies": 60, "contacts": 90}), secret).json()["meter_events"] == []
    assert meter_posts(stripe_api, before) == []  # Stripe was told 20 already; nothing new

    more = post(cp, report(tenant_id, {"ai_replies": 75, "contacts": 130}), secret)
    assert [(r.form["event_name"], r.form["payload[value]"], r.form["identifier"]) for r in meter_posts(stripe_api, before)] == [
        ("aat_ai_reply_overage", "5", f"{tenant_id}-{period}-ai_replies-25"),
        ("aat_contact_overage", "30", f"{tenant_id}-{period}-contacts-30")]
    assert len(more.json()["meter_events"]) == 2
    events = cp.ok("GET", f"/tenants/{tenant_id}/usage", params={"period": period})["meter_events"]
    assert [(e["metric"], e["value"], e["total"]) for e in events] == [("ai_replies", 20, 20), ("ai_replies", 5, 25),
                                                                       ("contacts", 30, 30)]
    billed = [e for e in stripe_api.meter_events.values() if e["payload"]["stripe_customer_id"] == customer]
    assert sum(int(e["payload"]["value"]) for e in billed if e["event_name"] == "aat_ai_reply_overage") == 25


def test_a_stripe_outage_or_a_lost_answer_never_bills_twice(cp: ControlPlaneServer, stripe_api: StripeStandIn,
                                                            tenant: tuple[str, str, str]) -> None:
    tenant_id, secret, customer = tenant
    period = utcnow().strftime("%Y-%m")
    stripe_api.fail_next = [500, 500, 500]  # the SDK tries three times
    answer = post(cp, report(tenant_id, {"ai_replies": 80, "contacts": 130}), secret)
    assert answer.status_code == 200, answer.text  # the report is kept; Stripe is told later
    assert answer.json()["meter_events"] == []
    identifier = f"{tenant_id}-{period}-ai_replies-30"
    assert identifier not in stripe_api.meter_events

    assert cp.run(cp.cp.usage_reports.retry_overage()) == 1  # the sweep's retry
    assert stripe_api.meter_events[identifier]["payload"] == {"stripe_customer_id": customer, "value": "5"}

    # Stripe took it but the control plane died before writing its row: the tenant's next report
    # makes the same request (identifier and Idempotency-Key), answered with the first answer,
    # counted once.
    cp.run(cp.cp.store.gateway.write(lambda db: db.conn.execute("DELETE FROM meter_events WHERE identifier = ?",
                                                               [identifier])))
    billed_before = dict(stripe_api.meter_events)
    before = len(stripe_api.requests)
    assert len(post(cp, report(tenant_id, {"ai_replies": 80, "contacts": 130}), secret).json()["meter_events"]) == 1
    [again] = meter_posts(stripe_api, before)
    assert (again.form["identifier"], again.headers["idempotency-key"]) == (identifier, identifier)
    assert stripe_api.meter_events == billed_before
    assert cp.run(cp.cp.store.gateway.read(usage_store.told_stripe, tenant_id, period, "ai_replies")) == 30
    assert cp.run(cp.cp.usage_reports.retry_overage()) == 0



def test_a_restarted_control_plane_bills_last_months_forgotten_overage_at_its_first_sweep(
        cp: ControlPlaneServer, stripe_api: StripeStandIn, tenant: tuple[str, str, str]) -> None:
    tenant_id, _, customer = tenant
    first_of_month = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (first_of_month - timedelta(days=1)).strftime("%Y-%m")
    issued = to_iso(first_of_month - timedelta(hours=2))
    # Last month's final report was kept but its meter event failed, and the process that
    # remembered the failure is gone: a fresh UsageReports is what a restart starts with.
    cp.run(cp.cp.store.gateway.write(usage_store.insert_report, report_id=f"r-{tenant_id}-last", tenant_id=tenant_id,
                                     period=last_month, issued_at=issued, received_at=issued,
                                     usage={**dict.fromkeys(usage_store.USAGE, 0), "ai_replies": 60}))
    old = cp.cp.usage_reports.overage
    restarted = UsageReports(cp.cp.store, Overage(old.meters, cp.cp.store, old.plans, old.client))
    before = len(stripe_api.requests)
    assert cp.run(restarted.retry_overage()) == 1
    [sent] = meter_posts(stripe_api, before)
    identifier = f"{tenant_id}-{last_month}-ai_replies-10"
    assert (sent.form["identifier"], sent.headers["idempotency-key"]) == (identifier, identifier)
    assert stripe_api.meter_events[identifier]["payload"] == {"stripe_customer_id": customer, "value": "10"}
    assert cp.run(restarted.retry_overage()) == 0  # told once; the next sweeps send nothing
