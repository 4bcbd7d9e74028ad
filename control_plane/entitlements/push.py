"""Pushing signed entitlements to hosted tenants' appliances.

Contract: an active tenant with a plan has, in its appliance, a token for that plan that
expires more than :data:`REFRESH_BEFORE_DAYS` days from now. :meth:`EntitlementPusher.ensure`
is called whenever that may have stopped being true (the lifecycle converged the tenant: after
provisioning, a restart, every sweep; its appliance came back up; the plan changed) and pushes
only when it did:

- a fresh token (:data:`TOKEN_DAYS` days) is signed from the tenant's *current* row and PUT to
  the appliance's ``/entitlements`` (the signature is the credential; no API token is sent);
- an appliance that is down or answers 5xx/429 is retried with backoff (:attr:`delays`),
  re-reading the row and re-signing each time, so a plan change during the retries wins;
  when the delays run out the next sweep starts over;
- any other answer (409 stale, 422 invalid: a key or tenant mismatch) is recorded on the
  tenant's ``tenant_entitlements.last_error`` and not retried until something changes.

One push runs per tenant at a time; a request during it runs once more after it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx

from appliance import audit
from appliance.timeutil import iso_in, iso_now, to_iso, utcnow
from control_plane.db import Store
from control_plane.entitlements import store
from control_plane.entitlements.plans import Plan, parse_plans
from control_plane.entitlements.signing import issue, load_signing_key, public_key_text
from control_plane.lifecycle import store as tenants
from control_plane.settings import ControlPlaneSettings

__all__ = ["EntitlementPusher", "TOKEN_DAYS", "REFRESH_BEFORE_DAYS", "DEFAULT_DELAYS"]

log = logging.getLogger("aat.cp.entitlements")

TOKEN_DAYS = 30
REFRESH_BEFORE_DAYS = 7
DEFAULT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class EntitlementPusher:
    def __init__(self, settings: ControlPlaneSettings, cp_store: Store, http: httpx.AsyncClient,
                 *, delays: tuple[float, ...] = DEFAULT_DELAYS) -> None:
        key_text = settings.entitlements_key.get_secret_value() if settings.entitlements_key else None
        self.key = load_signing_key(key_text, settings.data_dir)
        self.public_key = public_key_text(self.key)
        self.plans: dict[str, Plan] = {plan.id: plan for plan in parse_plans(settings.plans)}
        self.db = cp_store.gateway
        self.http = http
        self.delays = delays
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._again: set[str] = set()
        self.failed_attempts: dict[str, int] = {}  # per tenant, since the control plane started

    # --- when ------------------------------------------------------------------------------------
    def ensure(self, tenant_id: str) -> None:
        """Push in the background if the tenant's appliance lacks a current token (no-op otherwise)."""
        if tenant_id in self._running:
            self._again.add(tenant_id)
            return
        task = asyncio.create_task(self._run(tenant_id), name=f"entitlements-{tenant_id}")
        self._running[tenant_id] = task
        task.add_done_callback(lambda _t: self._done(tenant_id))

    def _done(self, tenant_id: str) -> None:
        self._running.pop(tenant_id, None)
        if tenant_id in self._again:
            self._again.discard(tenant_id)
            self.ensure(tenant_id)

    def on_ready(self, tenant_id: str, ready: bool) -> None:
        """The provisioner saw the tenant's appliance come up (again): push if one is owed."""
        if ready:
            self.ensure(tenant_id)

    async def change_plan(self, tenant_id: str, plan_id: str, actor: audit.Actor) -> bool:
        """Put the tenant on ``plan_id`` (audited) and push the new entitlement; ``True`` when
        the plan changed. Raises ``KeyError`` for a plan not in ``AAT_CP_PLANS``."""
        if plan_id not in self.plans:
            raise KeyError(f"no plan {plan_id!r}; the plans are {', '.join(self.plans)}")

        def change(db: Any) -> bool:
            changed = store.set_plan(db, tenant_id, plan_id, iso_now())
            if changed:
                audit.record(db, actor, "tenant.plan", target_kind="tenant", target_id=tenant_id,
                             details={"plan": plan_id})
            return changed

        changed = await self.db.write(change)
        self.ensure(tenant_id)
        return changed

    async def refresh_due(self) -> int:
        """The sweep's part: start a push for every tenant that needs one; returns how many."""
        due = await self.db.read(store.due, refresh_before=iso_in(REFRESH_BEFORE_DAYS * 86400))
        for tenant_id in due:
            self.ensure(tenant_id)
        return len(due)

    async def idle(self) -> None:
        """Wait until no push is running (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    # --- how -------------------------------------------------------------------------------------
    async def _run(self, tenant_id: str) -> None:
        refresh_before = iso_in(REFRESH_BEFORE_DAYS * 86400)
        due = await self.db.read(store.due, refresh_before=refresh_before)
        if tenant_id not in due:
            return
        try:
            await self.push(tenant_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a background push must not die silently; the sweep retries
            log.exception("entitlement push failed", extra={"tenant": tenant_id})

    async def push(self, tenant_id: str) -> dict[str, Any] | None:
        """Sign and PUT a token for the tenant's current plan, retrying while the appliance is
        unreachable. Returns the appliance's answer, or ``None`` (recorded as ``last_error``)."""
        error = "not attempted"
        for delay in (0.0, *self.delays):
            if delay:
                await asyncio.sleep(delay)
            row = await self.db.read(tenants.get_tenant, tenant_id)
            if row["status"] != "active" or row["plan"] is None or row["url"] is None:
                return None
            plan = self.plans.get(row["plan"])
            if plan is None:
                await self.db.write(store.record_error, tenant_id, f"plan {row['plan']!r} is not in AAT_CP_PLANS", iso_now())
                return None
            now = utcnow().replace(microsecond=0)
            token = issue(self.key, tenant=tenant_id, plan=plan, now=now, days=TOKEN_DAYS)
            try:
                response = await self.http.put(row["url"].rstrip("/") + "/entitlements", json={"token": token})
            except httpx.HTTPError as exc:
                error = f"the appliance is unreachable ({type(exc).__name__})"
                self.failed_attempts[tenant_id] = self.failed_attempts.get(tenant_id, 0) + 1
                continue
            if response.status_code == 200:
                await self.db.write(store.record_pushed, tenant_id, plan=plan.id, issued_at=to_iso(now),
                                    expires_at=to_iso(now + timedelta(days=TOKEN_DAYS)), now=iso_now())
                log.info("entitlement pushed", extra={"tenant": tenant_id, "plan": plan.id})
                return response.json()
            error = f"the appliance answered {response.status_code}: {_code(response)}"
            self.failed_attempts[tenant_id] = self.failed_attempts.get(tenant_id, 0) + 1
            if response.status_code < 500 and response.status_code != 429:
                break
        log.warning("entitlement not pushed", extra={"tenant": tenant_id, "error": error})
        await self.db.write(store.record_error, tenant_id, error, iso_now())
        return None


def _code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no JSON body"
    if isinstance(body, dict):
        return str(body.get("code") or body.get("error") or body.get("detail") or "")[:100]
    return ""
