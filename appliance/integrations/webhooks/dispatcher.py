"""The webhook dispatcher: domain events in, signed POSTs out, at least once.

One background worker per appliance (``FEATURE.workers``). Each round it

1. turns new domain events (``appliance.events.since``, in id order, from its durable cursor)
   into ``webhook_deliveries`` rows, one per matching active subscription, in one transaction
   with the cursor (a crash repeats the round; the rows are unique per subscription and event);
2. claims what is due and POSTs each (at most ``concurrency`` at a time) through the
   SSRF-safe client: the subscription's host is resolved and judged at every attempt, no
   redirects are followed, ``attempt_timeout`` seconds at most, the response body is not read;
3. records the attempt: a 2xx is ``delivered``; anything else (an error status, a redirect, a
   timeout, a refused address) is retried after an exponential backoff with equal jitter
   (``base * 2**(n-1)``, the n-th retry waits between half and all of it, capped at ``cap``)
   until 24 hours after the event, when the last attempt's failure makes it ``dead``. The final
   attempt is scheduled at the 24-hour mark, so a receiver that is back in time gets it.

A crash between a POST and its record sends the event again: receivers dedupe on the body's
``id``. Time and randomness are injected (``clock``, ``rng``) so tests can move a day forward.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from appliance.integrations.safe_http import (
    BlockedAddress,
    Resolver,
    UnresolvableHost,
    fetch,
    safe_client,
    system_resolver,
)
from appliance.integrations.webhooks import payload, store
from appliance.store.gateway import Gateway
from appliance.store.keys import FieldCipher
from appliance.timeutil import from_iso, to_iso, utcnow

__all__ = ["RetryPolicy", "Dispatcher", "backoff_seconds"]

log = logging.getLogger("aat.integrations.webhooks")

EXPIRE_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 10.0
    cap_seconds: float = 3600.0
    lifetime: timedelta = timedelta(hours=24)
    attempt_timeout: float = 10.0
    concurrency: int = 8
    poll_seconds: float = 0.5


def backoff_seconds(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Wait after failed attempt number ``attempt`` (1 for the first): with the defaults
    5-10 s, 10-20 s, 20-40 s ... up to 30-60 min, about 30 attempts in the 24 hours."""
    ceiling = min(policy.cap_seconds, policy.base_seconds * 2 ** min(30, max(0, attempt - 1)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Dispatcher:
    def __init__(
        self,
        *,
        db: Gateway,
        fields: FieldCipher,
        allow_private: bool,
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.db = db
        self.fields = fields
        self.allow_private = allow_private
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self.resolver = resolver
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._next_expiry = 0.0

    # --- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled; a failing round is logged and the next one tried."""
        try:
            while True:
                try:
                    await self.run_once(wait=False)
                    if time.monotonic() >= self._next_expiry:
                        self._next_expiry = time.monotonic() + EXPIRE_EVERY_SECONDS
                        await self.expire()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the worker must outlive one bad round
                    log.exception("webhook dispatch round failed")
                await asyncio.sleep(await self._pause())
        finally:
            await self.aclose()

    async def expire(self) -> int:
        """Deliveries of paused subscriptions whose 24 hours are over become ``dead`` (with a
        grace hour: the final attempt, due at the 24-hour mark, runs first)."""
        now = self.clock()
        expired = await self.db.write(store.expire, to_iso(now - timedelta(hours=1)), to_iso(now))
        if expired:
            log.info("webhook deliveries expired", extra={"count": expired})
        return int(expired)

    async def _pause(self) -> float:
        """Until the next due delivery, at most ``poll_seconds`` (new events are polled for)."""
        if len(self._in_flight) >= self.policy.concurrency:
            return self.policy.poll_seconds  # every slot is busy: look again when one may be free
        due = await self.db.read(store.next_due_at, frozenset(self._in_flight))
        if due is None:
            return self.policy.poll_seconds
        wait = (from_iso(due) - self.clock()).total_seconds()
        return min(self.policy.poll_seconds, max(0.01, wait))

    async def run_once(self, *, wait: bool = True) -> tuple[int, int]:
        """One round: fan out new events and start the attempts that are due (as many as
        there are free slots); with ``wait``, wait for those attempts to be recorded.
        Returns ``(deliveries created, attempts started)``."""
        created = 0
        _, cursor, latest = await self.db.read(store.dispatch_state)
        if latest > cursor:
            # Also with nothing subscribed: the cursor moves on, so a subscription paused or
            # created later never gets what happened before it listened.
            created = await self.db.write(store.fan_out, now=to_iso(self.clock()), lifetime=self.policy.lifetime)
        free = self.policy.concurrency - len(self._in_flight)
        if free <= 0:
            return created, 0
        due = await self.db.read(store.due_deliveries, to_iso(self.clock()), limit=free,
                                 exclude=frozenset(self._in_flight))
        tasks = [self._start(row) for row in due]
        if wait and tasks:
            await asyncio.gather(*tasks)
        return created, len(tasks)

    def _start(self, row: dict[str, Any]) -> asyncio.Task[None]:
        self._in_flight.add(row["id"])

        async def attempt() -> None:
            try:
                await self.attempt(row)
            except Exception:  # noqa: BLE001 - logged; the delivery stays due and is tried again
                log.exception("webhook attempt failed", extra={"delivery_id": row["id"]})
            finally:
                self._in_flight.discard(row["id"])

        task = asyncio.create_task(attempt())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- one attempt ----------------------------------------------------------------------
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = safe_client(allow_private=self.allow_private, timeout=self.policy.attempt_timeout,
                                       resolver=self.resolver, max_connections=self.policy.concurrency * 2)
        return self._client

    async def attempt(self, delivery: dict[str, Any]) -> str:
        """POST ``delivery`` once and record the outcome; returns the new status."""
        sub_id = delivery["subscription_id"]
        url = self.fields.decrypt(delivery["url_enc"], store.url_context(sub_id))
        secret = self.fields.decrypt(delivery["secret_enc"], store.secret_context(sub_id))
        body = await self.db.read(payload.build_body, delivery)
        started_at = self.clock()
        headers = {
            "Content-Type": "application/json",
            payload.SIGNATURE_HEADER: payload.sign(secret, int(started_at.timestamp()), body),
            "X-AAT-Event": delivery["event_type"],
            "X-AAT-Event-Id": f"evt_{delivery['event_id']}",
            "X-AAT-Delivery": str(delivery["id"]),
            "X-AAT-Attempt": str(delivery["attempts"] + 1),
        }
        started = time.perf_counter()
        status, error = await self._post(url, headers, body)
        duration_ms = round((time.perf_counter() - started) * 1000)
        now = self.clock()
        if error is None and status is not None and 200 <= status < 300:
            outcome, retry_at = "delivered", None
        elif now >= from_iso(delivery["expires_at"]):
            outcome, retry_at = "dead", None
        else:
            wait = backoff_seconds(delivery["attempts"] + 1, self.policy, self.rng)
            retry_at = to_iso(min(now + timedelta(seconds=wait), from_iso(delivery["expires_at"])))
            outcome = "pending"
        await self.db.write(
            store.record_attempt, delivery["id"], at=to_iso(started_at), status=status, error=error,
            duration_ms=duration_ms, outcome=outcome, retry_at=retry_at, now=to_iso(now),
        )
        log.info(
            "webhook attempt",
            extra={"delivery_id": delivery["id"], "subscription_id": sub_id, "event_id": delivery["event_id"],
                   "attempt": delivery["attempts"] + 1, "status": status, "error": error, "outcome": outcome,
                   "duration_ms": duration_ms},
        )
        return outcome

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int | None, str | None]:
        """``(status, error)``; an error status is ``http_<status>``."""
        try:
            fetched = await fetch(self.client(), "POST", url, headers=headers, content=body,
                                  deadline=self.policy.attempt_timeout, max_redirects=0, read_body=False)
        except BlockedAddress:
            return None, "blocked_address"
        except UnresolvableHost:
            return None, "dns_error"
        except (TimeoutError, httpx.TimeoutException):
            return None, "timeout"
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            return None, "invalid_url"
        except httpx.TransportError:
            return None, "connect_error"
        except httpx.HTTPError:
            return None, "http_error"
        if 200 <= fetched.status < 300:
            return fetched.status, None
        return fetched.status, f"http_{fetched.status}"

