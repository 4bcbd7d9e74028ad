"""Overage to Stripe as billing meter events (``AAT_CP_STRIPE_METERS``).

``AAT_CP_STRIPE_METERS`` maps a reported quantity that plans limit (``contacts``,
``ai_replies``, ``seats``, ``channels``) to the ``event_name`` of a Stripe meter (aggregation:
sum). A quantity left out is not billed by use; ``{}`` (the default) sends nothing.

Contract of :meth:`Overage.report` (after each accepted report, and by the sweep for this and
last month): for each metered quantity, the period's overage is the latest report's number
minus the tenant's plan limit (0 when within it). When it is above what Stripe was told for the
period (``meter_events``' highest ``total``), one meter event adds the difference:
``POST /v1/billing/meter_events`` through the SDK with ``payload[stripe_customer_id]`` (the
tenant's subscription's customer), ``payload[value]`` and ``identifier`` =
``<tenant>-<period>-<quantity>-<new total>``, also sent as the ``Idempotency-Key``. The
identifier names the total it brings Stripe to, so a retry of the same step (a timeout, a crash
before the row was written) is the same request and Stripe counts it once; the row is written
after Stripe accepted it. A Stripe failure is logged and the (tenant, period) kept in
:attr:`Overage.pending` for the sweep to retry (after a restart, the first sweep rechecks every
tenant that reported this month or last). No timestamp is sent (Stripe stamps receipt), so a retried request has exactly the same
parameters.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import stripe

from appliance.timeutil import iso_now
from control_plane.billing import store as billing
from control_plane.db import Store
from control_plane.entitlements.plans import Plan
from control_plane.lifecycle import store as tenants
from control_plane.usage import store

__all__ = ["Overage", "parse_meters", "LIMIT_OF"]

log = logging.getLogger("aat.cp.usage")

LIMIT_OF = {"contacts": "contacts", "ai_replies": "ai_replies_per_month", "seats": "seats", "channels": "channels"}


def parse_meters(text: str) -> dict[str, str]:
    """``AAT_CP_STRIPE_METERS``; raises ``ValueError`` naming what is wrong."""
    try:
        meters = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"AAT_CP_STRIPE_METERS is not JSON: {exc.msg}") from None
    if not isinstance(meters, dict):
        raise ValueError("AAT_CP_STRIPE_METERS must be a JSON object {quantity: meter event_name}")
    for key, name in meters.items():
        if key not in LIMIT_OF:
            raise ValueError(f"AAT_CP_STRIPE_METERS: {key!r} is not a limited quantity ({', '.join(LIMIT_OF)})")
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            raise ValueError(f"AAT_CP_STRIPE_METERS[{key}]: the event_name must be a string of 1-100 characters")
    return meters


class Overage:
    def __init__(self, meters: dict[str, str], cp_store: Store, plans: dict[str, Plan],
                 client: stripe.StripeClient | None) -> None:
        self.meters = meters
        self.db = cp_store.gateway
        self.plans = plans
        self.client = client
        self._lock = asyncio.Lock()  # one tenant-period computation at a time: no two events for one step
        self.pending: set[tuple[str, str]] = set()  # (tenant, period) whose last send failed

    async def report(self, tenant_id: str, period: str) -> list[dict[str, Any]]:
        """Send what Stripe was not told yet; returns the meter events sent now."""
        if not self.meters or self.client is None:
            return []
        async with self._lock:
            self.pending.discard((tenant_id, period))
            row = await self.db.read(tenants.get_tenant, tenant_id)  # reports come from known tenants only
            latest = await self.db.read(store.latest_report, tenant_id, period)
            subscription = await self.db.read(billing.get_subscription, tenant_id)
            plan = self.plans.get(row["plan"]) if row and row["plan"] else None
            if latest is None or subscription is None or plan is None:
                return []
            limits = plan.limits.as_claims()
            sent = []
            for metric, event_name in sorted(self.meters.items()):
                limit = limits.get(LIMIT_OF[metric])
                if limit is None:
                    continue
                overage = max(0, int(latest[metric]) - limit)
                told = await self.db.read(store.told_stripe, tenant_id, period, metric)
                if overage <= told:
                    continue
                event = await self._send(tenant_id, period, metric, event_name, subscription["customer_id"],
                                         value=overage - told, total=overage)
                if event is None:
                    self.pending.add((tenant_id, period))
                else:
                    sent.append(event)
            return sent

    async def _send(self, tenant_id: str, period: str, metric: str, event_name: str, customer: str,
                    *, value: int, total: int) -> dict[str, Any] | None:
        identifier = f"{tenant_id}-{period}-{metric}-{total}"
        params = {"event_name": event_name, "identifier": identifier,
                  "payload": {"stripe_customer_id": customer, "value": str(value)}}
        assert self.client is not None
        try:
            await self.client.v1.billing.meter_events.create_async(params,  # type: ignore[arg-type]
                                                                   {"idempotency_key": identifier})
        except stripe.StripeError as exc:
            log.warning("meter event not sent", extra={"tenant": tenant_id, "metric": metric,
                                                       "error": type(exc).__name__, "status": exc.http_status})
            return None
        event = {"identifier": identifier, "tenant_id": tenant_id, "period": period, "metric": metric,
                 "event_name": event_name, "customer_id": customer, "value": value, "total": total}
        await self.db.write(store.insert_meter_event, **event, sent_at=iso_now())
        log.info("meter event sent", extra={"tenant": tenant_id, "metric": metric, "value": value})
        return event
