"""The periodic sweep (every ``AAT_CP_SWEEP_SECONDS``): converge every live tenant (provision,
restart, stop, tear down past ``delete_after``), purge what the router no longer needs
(delivered rows and dead letters after 7 days, unclaimed entries after 24 h), dead-letter
deliveries past the retry horizon, revoke expired support tokens, and once a day check
channel tokens. Returns (and logs) a small summary."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from appliance.timeutil import iso_in, iso_now
from control_plane.lifecycle import store as tenants
from control_plane.routing import store as routing

if TYPE_CHECKING:
    from control_plane.runtime import ControlPlane

__all__ = ["sweep_once", "run_sweeps", "KEEP_SECONDS", "TOKEN_CHECK_SECONDS"]

log = logging.getLogger("aat.cp.sweep")

KEEP_SECONDS = 7 * 86400
TOKEN_CHECK_SECONDS = 86400


async def sweep_once(cp: ControlPlane) -> dict[str, Any]:
    db = cp.store.gateway
    await cp.lifecycle.sweep_tenants()
    summary: dict[str, Any] = {}
    summary["purged"] = await db.write(routing.purge, now=iso_now(), kept_since=iso_in(-KEEP_SECONDS))
    summary["dead_lettered"] = await db.write(routing.dead_letter_expired, iso_in(-cp.forwarder.policy.horizon), iso_now())
    summary["support_tokens_revoked"] = await cp.support.revoke_expired()
    summary["entitlements_due"] = await cp.entitlements.refresh_due()
    summary["suspended_past_grace"] = await cp.billing.suspend_past_grace()
    summary["usage_recorded"] = await cp.usage.collect()
    summary["meter_events_sent"] = await cp.usage_reports.retry_overage()
    if (cp.settings.meta_app_id and cp.platform.meta_app_secret
            and (not cp.last_token_check or time.monotonic() - cp.last_token_check > TOKEN_CHECK_SECONDS)):
        cp.last_token_check = time.monotonic()
        summary["tokens"] = await cp.onboarding.check_tokens()
    for status, count in (await db.read(tenants.counts_by_status)).items():
        cp.metrics.tenants.labels(status=status).set(count)
    return summary


async def run_sweeps(cp: ControlPlane) -> None:
    while True:
        try:
            summary = await sweep_once(cp)
            log.info("sweep done", extra={"summary": summary})
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next sweep tries again
            log.exception("sweep failed")
        await asyncio.sleep(cp.settings.sweep_seconds)
