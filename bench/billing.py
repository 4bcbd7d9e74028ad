"""Stripe webhook handling on the control plane, three paths side by side in one run:

- **processed**: a signed ``customer.subscription.updated`` for a known subscription: verify
  (HMAC, 300 s), idempotency check, the subscription retrieved from Stripe through the SDK (a
  local stand-in on loopback), subscription row written, event id recorded;
- **duplicate**: the same event again (verify + one read);
- **forged**: a bad signature (403, nothing read or written);

plus the entitlement token itself: Ed25519 sign (``issue``) and verify, per token; and signed
usage reports (``POST /usage/reports``) side by side: **report** (HMAC, freshness and replay
checks, report row + month row written), **report+meter** (the same plus one Stripe meter event
through the SDK and its row: each report raises the AI-reply overage by one), **forged report**
(403) and **replayed report** (409).

    .venv/bin/python bench/billing.py [--events 200]

Sequential requests from one client (latency, not throughput); medians and ratios to the
duplicate path. Writes bench/results/billing-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from appliance.entitlements.report import HEADER, build  # noqa: E402
from appliance.entitlements.report import signature as report_signature  # noqa: E402
from appliance.entitlements.token import verify  # noqa: E402
from appliance.timeutil import iso_now  # noqa: E402
from bench._support import RESULTS_DIR, machine  # noqa: E402
from control_plane.billing import store as billing_store  # noqa: E402
from control_plane.entitlements.signing import issue  # noqa: E402
from control_plane.lifecycle.service import new_tenant_row, unseal  # noqa: E402
from tests.control_plane.harness import ControlPlaneServer  # noqa: E402
from tests.control_plane.standins.stripe_api import StripeStandIn, signature  # noqa: E402

SK, WHSEC = "sk_test_bench", "whsec_bench"
PLANS = '[{"id": "starter", "stripe_price": "price_starter", "limits": {"contacts": 1000, "ai_replies_per_month": 0}}]'


def timed(fn, n: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def usage_paths(cp: ControlPlaneServer, client: httpx.Client, row: dict, n: int) -> dict[str, list[float]]:
    secret = unseal(cp.cp.store.fields, "webhook_secret", row["id"], row["webhook_secret_enc"])
    counter = iter(range(1, 10 * n + 10))
    usage = {"contacts": 1, "automated_contacts": 1, "seats": 1, "channels": 1, "messages": 1}

    def post(body: bytes, key: str = secret) -> httpx.Response:
        return client.post("/usage/reports", content=body, headers={"Content-Type": "application/json",
                                                                    HEADER: report_signature(body, key)})

    def fresh(ai_replies: int) -> bytes:
        return build(row["id"], {**usage, "ai_replies": ai_replies}, datetime.now(UTC))

    ceiling = [0]

    def report() -> None:  # no new overage: the AI replies stay at the ceiling already billed
        assert post(fresh(ceiling[0])).json()["meter_events"] == []

    def metered() -> None:
        ceiling[0] = next(counter)
        assert len(post(fresh(ceiling[0])).json()["meter_events"]) == 1

    seen = fresh(0)
    post(seen)

    def forged() -> None:
        assert post(fresh(0), "another-secret").status_code == 403

    def replayed() -> None:
        assert post(seen).status_code == 409

    timed(metered, 5)  # warm up
    return {"report+meter": timed(metered, n), "report": timed(report, n), "forged report": timed(forged, n),
            "replayed report": timed(replayed, n)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    stripe_api = StripeStandIn(SK).start()
    stripe_api.add_price("price_starter")
    with tempfile.TemporaryDirectory() as root:
        cp = ControlPlaneServer(Path(root), "http://127.0.0.1:9", plans=PLANS, stripe_api_base=stripe_api.base_url,
                                stripe_secret_key=SK, stripe_webhook_secret=WHSEC,
                                stripe_meters='{"ai_replies": "aat_ai_reply_overage"}').start()
        try:
            session = stripe_api._create_session({"mode": "subscription", "line_items[0][price]": "price_starter"})[1]
            done = stripe_api.complete_checkout(session["id"])
            sub = stripe_api.subscriptions[done["subscription"]]

            def seed(db):  # noqa: ANN001, ANN202 - a tenant row only: nothing is provisioned
                row = new_tenant_row(db, cp.cp.store.fields, name="Bench", provisioner="local", owner_email=None,
                                     plan="starter", actor=__import__("appliance.audit", fromlist=["Actor"]).Actor("system"))
                billing_store.upsert_subscription(db, tenant_id=row["id"], customer_id=sub["customer"],
                                                  subscription_id=sub["id"], status="active", price_id="price_starter",
                                                  past_due_since=None, canceled_at=None, now=iso_now())
                return row

            row = cp.run(cp.cp.store.gateway.write(seed))
            client = httpx.Client(base_url=cp.base_url, timeout=30)
            headers = {"Content-Type": "application/json"}
            bodies = [stripe_api.event("customer.subscription.updated", sub)[1] for _ in range(args.events)]
            it = iter(bodies)
            seen = stripe_api.event("customer.subscription.updated", sub)[1]
            client.post("/webhooks/stripe", content=seen, headers={**headers, "Stripe-Signature": signature(seen, WHSEC)})

            def processed() -> None:
                body = next(it)
                r = client.post("/webhooks/stripe", content=body, headers={**headers, "Stripe-Signature": signature(body, WHSEC)})
                assert r.json()["status"] == "processed", r.text

            def duplicate() -> None:
                r = client.post("/webhooks/stripe", content=seen,
                                headers={**headers, "Stripe-Signature": signature(seen, WHSEC)})
                assert r.json()["status"] == "duplicate", r.text

            def forged() -> None:
                r = client.post("/webhooks/stripe", content=seen,
                                headers={**headers, "Stripe-Signature": signature(seen, "whsec_other")})
                assert r.status_code == 403

            for fn in (duplicate, forged):  # warm up
                timed(fn, 10)
            results = {"processed": timed(processed, args.events), "duplicate": timed(duplicate, args.events),
                       "forged": timed(forged, args.events)}
            results.update(usage_paths(cp, client, row, args.events))
            key = cp.cp.entitlements.key
            plan = next(iter(cp.cp.entitlements.plans.values()))
            now = datetime.now(UTC)
            results["token_sign"] = timed(lambda: issue(key, tenant="t1", plan=plan, now=now, days=30), args.events)
            token = issue(key, tenant="t1", plan=plan, now=now, days=30)
            public = key.public_key()
            results["token_verify"] = timed(lambda: verify(token, public, tenant="t1"), args.events)
        finally:
            cp.stop()
            stripe_api.stop()
    medians = {k: statistics.median(v) for k, v in results.items()}
    base = medians["duplicate"]
    summary = {"machine": machine(), "load_average": os.getloadavg(), "events": args.events,
               "median_ms": {k: round(v, 3) for k, v in medians.items()},
               "p95_ms": {k: round(sorted(v)[int(len(v) * 0.95) - 1], 3) for k, v in results.items()},
               "ratio_to_duplicate": {k: round(medians[k] / base, 2) for k in ("processed", "duplicate", "forged")},
               "ratio_to_report": {k: round(medians[k] / medians["report"], 2)
                                   for k in ("report", "report+meter", "forged report", "replayed report")}}
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"billing-{int(time.time())}.json"
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("load_average", "median_ms", "p95_ms", "ratio_to_duplicate",
                                                                "ratio_to_report")}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
