"""The router: a verified Meta delivery, split by asset, journaled per tenant, then queued.

Everything for one delivery is one write: a delivery row per tenant (its entries regrouped
into one body with the same ``object``), unclaimed entries (assets nobody connected, kept 24 h
for a late onboarding to claim), and the keyed hashes of the Meta users it mentions. The 200
goes back once that write is durable, whatever state the tenants are in; forwarding happens
after (``forwarder``).

**Group commit of acks.** While one journal write is in flight, the deliveries arriving
meanwhile wait and then go together as one writer job (``store.journal_many``: one
transaction, a savepoint per delivery, so one delivery's failure fails only its own request);
each request's answer waits for its own rows. Under load this turns N handoffs to the writer
thread into one. The rows are queued for forwarding by that job's completion, not by the
request, so a request cancelled while waiting still has its rows forwarded.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from appliance.timeutil import iso_in, iso_now
from control_plane.db import Store
from control_plane.metrics import Metrics
from control_plane.routing import store
from control_plane.routing.forwarder import Forwarder
from control_plane.routing.split import WABA, Delivery, body_of

__all__ = ["RoutingTable", "Router", "UNCLAIMED_SECONDS"]

UNCLAIMED_SECONDS = 24 * 3600
_USER_CACHE = 100_000
_USER_REFRESH = 86400.0


class RoutingTable:
    """Asset -> tenant, in memory (loaded from ``channels`` at start, kept in step by onboarding
    and teardown)."""

    def __init__(self) -> None:
        self.assets: dict[tuple[str, str], str] = {}
        self.wabas: dict[str, str] = {}
        self._waba_of: dict[tuple[str, str], str] = {}  # connected asset -> the WABA it came with

    def load(self, rows: list[dict[str, Any]]) -> None:
        self.assets.clear()
        self.wabas.clear()
        self._waba_of.clear()
        for row in rows:
            self.add(row["type"], row["external_id"], row["tenant_id"], row.get("waba_id"))

    def add(self, kind: str, asset_id: str, tenant_id: str, waba_id: str | None = None) -> None:
        self.assets[(kind, asset_id)] = tenant_id
        if waba_id:
            self.wabas[waba_id] = tenant_id
            self._waba_of[(kind, asset_id)] = waba_id

    def remove(self, kind: str, asset_id: str) -> None:
        """The asset's route goes; its WABA's route goes with the last number connected through it."""
        self.assets.pop((kind, asset_id), None)
        waba = self._waba_of.pop((kind, asset_id), None)
        if waba is not None and waba not in self._waba_of.values():
            self.wabas.pop(waba, None)

    def drop_tenant(self, tenant_id: str) -> None:
        for key in [k for k, t in self.assets.items() if t == tenant_id]:
            del self.assets[key]
            self._waba_of.pop(key, None)
        for waba in [w for w, t in self.wabas.items() if t == tenant_id]:
            del self.wabas[waba]

    def lookup(self, kind: str, asset_id: str | None) -> str | None:
        if asset_id is None:
            return None
        if kind == WABA:
            return self.wabas.get(asset_id)
        return self.assets.get((kind, asset_id))

    def assets_of(self, tenant_id: str) -> list[tuple[str, str]]:
        return [k for k, t in self.assets.items() if t == tenant_id]


class Router:
    def __init__(self, cp_store: Store, forwarder: Forwarder, metrics: Metrics, table: RoutingTable) -> None:
        self.store = cp_store
        self.forwarder = forwarder
        self.metrics = metrics
        self.table = table
        self._seen_users: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._waiting: list[tuple[tuple[Any, ...], asyncio.Future[list[int]]]] = []
        self._writing: asyncio.Task[None] | None = None

    def _users(self, pairs: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """``(user_hash, tenant)`` pairs not recorded in the last day (most deliveries repeat
        them; the keyed hash is computed only for those, the cache is in memory only)."""
        now = time.monotonic()
        fresh = []
        for key in pairs:
            seen = self._seen_users.get(key)
            if seen is None or now - seen > _USER_REFRESH:
                fresh.append((self.store.user_hash(key[0]), key[1]))
                self._seen_users[key] = now
                self._seen_users.move_to_end(key)
        while len(self._seen_users) > _USER_CACHE:
            self._seen_users.popitem(last=False)
        return fresh

    async def accept(self, delivery: Delivery) -> dict[str, int]:
        """Journal one delivery (durable when this returns) and queue its parts."""
        groups: dict[str, list[bytes]] = {}
        events: dict[str, int] = {}
        unclaimed: list[tuple[str, str, str, bytes]] = []
        users: set[tuple[str, str]] = set()
        for part in delivery.parts:
            tenant = self.table.lookup(part.kind, part.asset_id)
            if tenant is None:
                if part.asset_id is not None and part.kind != "unknown":
                    unclaimed.append((part.kind, part.asset_id, delivery.object, part.entry))
                self.metrics.unknown_assets.inc()
                continue
            groups.setdefault(tenant, []).append(part.entry)
            events[tenant] = events.get(tenant, 0) + part.events
            users.update((uid, tenant) for uid in part.users)
        rows = [(t, delivery.object, events[t], body_of(delivery.object, entries)) for t, entries in groups.items()]
        now = iso_now()
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        expires = iso_in(UNCLAIMED_SECONDS) if unclaimed else now  # (formatting a time is not free)
        self._waiting.append(((rows, unclaimed, self._users(users), now, expires), done))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_waiting())
        await done
        return {"tenants": len(rows), "unclaimed": len(unclaimed)}

    async def _write_waiting(self) -> None:
        """Journal what waits, one writer job at a time (see the module docstring)."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    outcomes = await self.store.gateway.write(store.journal_many, [args for args, _ in batch])
                except Exception as exc:  # noqa: BLE001 - the transaction failed: every request of it answers so
                    outcomes = [exc] * len(batch)
                for (args, done), outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        if not done.done():
                            done.set_exception(outcome)
                        continue
                    rows, now = args[0], args[3]
                    for (tenant, object_, count, body), delivery_id in zip(rows, outcome, strict=True):
                        self.metrics.events_routed.inc(count)
                        self.forwarder.enqueue(tenant, [{"id": delivery_id, "object": object_, "body": body,
                                                         "attempts": 0, "received_at": now, "next_attempt_at": now}])
                    if not done.done():
                        done.set_result(outcome)
        finally:
            self._writing = None
