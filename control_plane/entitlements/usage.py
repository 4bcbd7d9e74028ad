"""Usage: what each hosted tenant uses, recorded per month from its appliance.

The control plane reads ``GET /api/v1/entitlements`` of every active tenant with its own API
token (owner role, made at provisioning) and keeps the month's latest numbers in
``tenant_usage``: contacts, AI replies this month, seats, channels, and which limits are
exceeded. The sweep calls :meth:`UsageCollector.collect` at most every
:data:`COLLECT_SECONDS`. A tenant that does not answer is skipped (its last numbers stay).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx

from appliance.store.rows import many
from appliance.timeutil import iso_now, utcnow
from control_plane.db import Store
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import Lifecycle

__all__ = ["UsageCollector", "COLLECT_SECONDS", "record", "usage_of"]

log = logging.getLogger("aat.cp.usage")

COLLECT_SECONDS = 3600.0


def record(db: Any, tenant_id: str, month: str, answer: dict[str, Any], now: str) -> None:
    usage = answer.get("usage") or {}
    db.conn.execute(
        "INSERT INTO tenant_usage (tenant_id, month, contacts, ai_replies, seats, channels, plan, over_limit, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, month) DO UPDATE SET contacts = excluded.contacts, "
        "ai_replies = excluded.ai_replies, seats = excluded.seats, channels = excluded.channels, plan = excluded.plan, "
        "over_limit = excluded.over_limit, recorded_at = excluded.recorded_at",
        [tenant_id, month, int(usage.get("contacts", 0)), int(usage.get("ai_replies_per_month", 0)),
         int(usage.get("seats", 0)), int(usage.get("channels", 0)), answer.get("plan"),
         json.dumps(sorted(answer.get("over_limit") or [])), now])


def usage_of(db: Any, tenant_id: str) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM tenant_usage WHERE tenant_id = ? ORDER BY month", [tenant_id])


class UsageCollector:
    def __init__(self, cp_store: Store, http: httpx.AsyncClient, lifecycle: Lifecycle) -> None:
        self.db = cp_store.gateway
        self.http = http
        self.lifecycle = lifecycle
        self.last = 0.0

    async def collect(self, *, force: bool = False) -> int | None:
        """Record every active tenant's usage; ``None`` when the last run is too recent."""
        if not force and self.last and time.monotonic() - self.last < COLLECT_SECONDS:
            return None
        self.last = time.monotonic()
        rows = [r for r in await self.db.read(tenants.live_tenants) if r["status"] == "active" and r["url"]]
        done = await asyncio.gather(*(self._one(row) for row in rows))
        return sum(done)

    async def _one(self, row: dict[str, Any]) -> int:
        token = self.lifecycle.api_token(row)
        if token is None:
            return 0
        month = utcnow().strftime("%Y-%m")
        try:
            response = await self.http.get(row["url"].rstrip("/") + "/api/v1/entitlements",
                                           headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("usage not collected", extra={"tenant": row["id"], "error": type(exc).__name__})
            return 0
        await self.db.write(record, row["id"], month, answer, iso_now())
        return 1
