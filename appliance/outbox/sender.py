"""The sender: takes due messages from the outbox and sends them through the channel adapters.

One asyncio task in the web process. Each round it claims due rows (durably marking them
``sending``), sends each in its own task, and records the outcome:

- a message whose every part Meta already reported (an echo or status settled it while it
  was in doubt or waiting for a retry, :func:`appliance.outbox.store.settle`) is marked sent
  without a request, whatever the policy or the channel say now;
- the channel must be ``active``, and the policy (:mod:`appliance.outbox.policy`) must allow
  the send; otherwise it fails with the reason and is never attempted;
- a public reply to a comment (``payload.public_reply_to``) goes to the comment through the
  adapter's ``reply_to_comment`` (no messaging window applies: it is not a message);
- rendering by the adapter; a message the channel cannot express fails with the reason. Each
  request carries our reference (:func:`appliance.outbox.store.reference`, one per part) as
  Messenger ``metadata`` / WhatsApp ``biz_opaque_callback_data``;
- the channel's rate limiter holds a slot around every request
  (:mod:`appliance.outbox.ratelimit`); broadcast messages (``priority`` > 0) queue for their
  slot one at a time per channel, first come first served, and none takes a slot while an
  agent reply or a flow message claimed on that channel is not done yet, so at most one of
  them competes with it for the next free slot;
- every request goes out through the sender's :class:`appliance.channels.wire.GraphWire`
  (aiohttp directly), and sends are recorded by group commit (:mod:`appliance.outbox.recorder`);
- transient errors are retried with backoff and jitter, permanent ones fail at once, code 190
  marks the channel ``needs_reauth`` and fails the message (:mod:`appliance.outbox.retry`);
  a throttling answer (130429, 613, 80007 ...: ``retry.THROTTLE_CODES``) also holds every
  send on that channel for the retry's delay; WhatsApp's 131050 (the contact stopped
  marketing messages) records the contact's marketing opt-out.

At most ``concurrency`` sends are in flight; per conversation one at a time, in order.
:meth:`Sender.wake` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from appliance.channels.base import ChannelAdapter, adapter_for
from appliance.channels.outbound import (
    Button,
    Card,
    ChannelAccount,
    GraphError,
    Media,
    Outbound,
    Recipient,
    RenderError,
    Template,
)
from appliance.channels.wire import GraphWire
from appliance.connections.store import mark_needs_reauth, token_context
from appliance.contacts.store import set_marketing_preference
from appliance.metrics import Metrics
from appliance.outbox import policy, retry, store
from appliance.outbox.ratelimit import MARGIN_SECONDS, PERIOD_SECONDS, Lease, LimiterRegistry, SlidingWindowLimiter
from appliance.outbox.recorder import Recorder
from appliance.settings import Settings
from appliance.store.gateway import Gateway
from appliance.store.keys import FieldCipher
from appliance.timeutil import from_iso, to_iso, utcnow

__all__ = ["Sender", "build_outbound", "render_parts"]

log = logging.getLogger("aat.outbox")

MessageListener = Callable[[list[int]], Awaitable[None]]

# After an unexpected error (a bug, the database refusing writes): wait before trying again.
ERROR_PAUSE_SECONDS = 1.0
CRASHED_SEND_RETRY_SECONDS = 60.0
IDLE_POLL_SECONDS = 5.0
MARKETING_STOPPED = 131050


def _buttons(items: list[dict[str, Any]] | None) -> tuple[Button, ...]:
    return tuple(
        Button(title=b["title"], payload=b.get("payload"), url=b.get("url"), phone=b.get("phone"))
        for b in items or ()
    )


def build_outbound(row: dict[str, Any], decision: policy.Decision) -> Outbound:
    """The channel-independent message for a claimed outbox row (see outbox.store._CONTEXT)."""
    payload = row["payload"]
    media = payload.get("media")
    template = payload.get("template")
    return Outbound(
        recipient=Recipient(
            external_id=row["contact_external_id"],
            wa_id=row["wa_id"],
            bsuid=row["bsuid"],
            comment_id=payload.get("private_reply_to"),
        ),
        text=row["text"],
        media=Media(type=media["type"], url=media["url"]) if media else None,
        buttons=_buttons(payload.get("buttons")),
        quick_replies=_buttons(payload.get("quick_replies")),
        cards=tuple(
            Card(
                title=c["title"], subtitle=c.get("subtitle"), image_url=c.get("image_url"),
                url=c.get("url"), buttons=_buttons(c.get("buttons")),
            )
            for c in payload.get("cards", ())
        ),
        template=Template(
            name=template["name"], language=template["language"],
            components=tuple(template.get("components", ())),
        ) if template else None,
        messaging_type=decision.messaging_type or "RESPONSE",
        tag=decision.tag,
        reply_to=row["reply_to"],
        metadata=store.reference(row["message_id"]),
    )


def render_parts(adapter: ChannelAdapter, outbound: Outbound, message_id: int) -> list[dict[str, Any]]:
    """The request bodies of one message, each carrying its own part's reference, so that an
    echo or status tells exactly which part went out (adapters put one ``metadata`` on every
    body). Raises :class:`RenderError`."""
    bodies = adapter.render(outbound)
    if len(bodies) == 1:
        return bodies
    return [
        body if part == 0 else adapter.render(
            dataclasses.replace(outbound, metadata=store.reference(message_id, part))
        )[part]
        for part, body in enumerate(bodies)
    ]


def _fail_with_reauth(
    db: Database, channel_id: int, outbox_id: int, message_id: int, error: GraphError, now: str
) -> None:
    mark_needs_reauth(db, channel_id, "Meta rejected the access token (code 190); reconnect the channel", now)
    store.mark_failed(
        db, outbox_id, message_id, code="190",
        reason="the channel's access token is no longer valid; reconnect the channel", now=now,
    )


def _fail_opted_out(db: Database, contact_id: int, outbox_id: int, message_id: int, reason: str, now: str) -> None:
    set_marketing_preference(db, contact_id, True, now)
    store.mark_failed(db, outbox_id, message_id, code=str(MARKETING_STOPPED), reason=reason, now=now)


def _recover(db: Database, *, since: str, resend_at: str) -> tuple[dict[int, str | None], int]:
    """One job: the last sends are read before the rows left ``sending`` are requeued (they
    count as sends in doubt)."""
    last = store.last_sends(db, since)
    return last, store.recover_in_doubt(db, resend_at=resend_at)


class Sender:
    def __init__(
        self,
        *,
        gateway: Gateway,
        settings: Settings,
        user_agent: str,
        fields: FieldCipher,
        metrics: Metrics,
        concurrency: int = 256,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._db = gateway
        self._settings = settings
        self._fields = fields
        self._metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()
        self._limiters = LimiterRegistry()
        self._capacity = concurrency
        self._in_flight: set[asyncio.Task[None]] = set()
        self._holds: dict[int, float] = {}  # channel id -> loop time before which nothing starts
        self._bulk_turns: dict[int, asyncio.Lock] = {}  # channel id -> the broadcast messages' queue
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.listeners: list[MessageListener] = []
        # Every request's connection pool, sized to the sends in flight, and group commit of
        # the outcomes.
        self._wire = GraphWire(user_agent=user_agent, timeout=settings.http_timeout_seconds, connections=concurrency)
        self._recorder = Recorder(gateway, next_claims=self)
        self._backlog = False  # the last claim round filled every free slot: more may be due
        self._accounts: dict[tuple[Any, ...], ChannelAccount] = {}
        self._urgent: dict[int, int] = {}  # channel id -> priority-0 sends claimed and not done
        self._urgent_done: dict[int, asyncio.Event] = {}  # set when that count is back to 0
        self._counters: dict[tuple[str, str], Any] = {}  # labelled children of the metrics, made once
        self._timers: dict[str, Any] = {}

    def wake(self) -> None:
        """Look at the outbox now (something was queued, a channel reconnected). Safe from
        any thread: asyncio objects may only be touched from their own loop."""
        loop = self._loop
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is None or current is loop:
            self._wake.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
            loop.call_soon_threadsafe(self._wake.set)

    async def recover(self) -> int:
        """At start: carry the last second's sends over to the rate limiters (they must hold
        across a restart: ``appliance.outbox.ratelimit``), then requeue the sends a crash left
        in doubt (``outbox.store.recover_in_doubt``). Returns how many were in doubt."""
        self._loop = asyncio.get_running_loop()
        now = self._clock()
        since = to_iso(now - timedelta(seconds=PERIOD_SECONDS + MARGIN_SECONDS))
        resend_at = to_iso(now + timedelta(seconds=self._settings.send_in_doubt_grace_seconds))
        last, count = await self._db.write(_recover, since=since, resend_at=resend_at)
        for channel_id, sent_at in last.items():
            self._limiters.carry_over(channel_id, 0.0 if sent_at is None else (now - from_iso(sent_at)).total_seconds())
        if count:
            log.warning("sends in doubt after restart", extra={"count": count})
        return count

    async def run(self) -> None:
        """Claim and send until cancelled. An unexpected error (a bug, a database that refuses
        writes) is logged and the loop carries on after a pause: it must never die quietly."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                claimed_all = await self._claim_round()
                if claimed_all:
                    await asyncio.sleep(0)
                    continue
                await self._sleep_until_due()
            except Exception:  # noqa: BLE001 - see the docstring
                log.exception("sender round failed")
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def _claim_round(self) -> bool:
        """Start sending what is due; True when every free slot was filled (look again)."""
        free = self._capacity - len(self._in_flight)
        if free <= 0:
            self._backlog = True
            return False
        rows = await self._db.write(store.claim_due, to_iso(self._clock()), free)
        self.start_claimed(rows)
        self._backlog = len(rows) == free
        return self._backlog

    def free_slots(self) -> int:
        """Sends that can start now (the journal processor claims at most this many)."""
        return max(0, self._capacity - len(self._in_flight))

    def claim_now(self) -> str:
        """The time claims compare ``next_attempt_at`` with."""
        return to_iso(self._clock())

    def start_claimed(self, rows: list[dict[str, Any]]) -> None:
        """Send rows ``store.claim_due`` marked ``sending`` in a committed transaction (on the
        event loop)."""
        for row in rows:
            task = asyncio.create_task(self._deliver(row))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _sleep_until_due(self) -> None:
        timeout = IDLE_POLL_SECONDS
        if len(self._in_flight) < self._capacity:
            next_at = await self._db.read(store.next_due_at)
            if next_at is not None:
                timeout = min(timeout, max(0.0, (from_iso(next_at) - self._clock()).total_seconds()))
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives just as
        # the event is set (gh-86296), and the lifespan's shutdown would then wait forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def drain(self) -> None:
        """Wait for the sends in flight (used at shutdown and by tests)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        await self._wire.aclose()  # reopened by the next send

    async def _deliver(self, row: dict[str, Any]) -> None:
        channel_id, urgent = row["channel_id"], row["priority"] <= 0
        if urgent:  # broadcast messages wait for it from now on (see _slot)
            self._urgent[channel_id] = self._urgent.get(channel_id, 0) + 1
            self._urgent_done.setdefault(channel_id, asyncio.Event()).clear()
        try:
            outcome = await self._attempt(row)
        except Exception:  # noqa: BLE001 - a bug must not kill the sender
            log.exception("send crashed", extra={"message_id": row["message_id"]})
            outcome = "crashed"
            # If even this write fails, the row stays ``sending`` and is in doubt at restart.
            with contextlib.suppress(Exception):
                await self._db.write(
                    store.mark_retry, row["outbox_id"],
                    next_attempt_at=to_iso(self._clock() + timedelta(seconds=CRASHED_SEND_RETRY_SECONDS)),
                    error="internal error",
                )
        finally:
            if urgent:
                self._urgent[channel_id] -= 1
                if not self._urgent[channel_id]:
                    self._urgent_done[channel_id].set()
        key = (row["channel_type"], outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._metrics.sends.labels(channel=key[0], outcome=outcome)
        counter.inc()
        for listener in self.listeners:
            try:
                await listener([row["message_id"]])
            except Exception:  # noqa: BLE001 - a listener's bug is not the send's
                log.exception("send listener failed", extra={"message_id": row["message_id"]})
        # A sent message's conversation was looked at in the transaction that recorded it
        # (Recorder: what is due next there is claimed and started). Anything else (a failure,
        # a retry, a hold) can make other messages due, and so can the freed slot while the
        # last claim round had filled them all: then the sender looks.
        if outcome != "sent" or self._backlog:
            self.wake()

    async def _fail(self, row: dict[str, Any], code: str | None, reason: str) -> None:
        await self._db.write(
            store.mark_failed, row["outbox_id"], row["message_id"], code=code, reason=reason,
            now=to_iso(self._clock()),
        )

    def _decide(self, row: dict[str, Any]) -> policy.Decision:
        payload = row["payload"]
        comment_at = payload.get("comment_created_at")
        return policy.decide(
            row["channel_type"],
            sent_by="user" if row["sent_by"] == "user" else "bot",
            is_template=row["kind"] == "template",
            last_inbound_at=from_iso(row["last_inbound_at"]) if row["last_inbound_at"] else None,
            now=self._clock(),
            comment_created_at=from_iso(comment_at) if comment_at and payload.get("private_reply_to") else None,
        )

    async def _settled_already(self, row: dict[str, Any], adapter: ChannelAdapter) -> bool:
        """Meta reported every part of this message before we (re)sent it: record it sent."""
        if row["parts_done"] <= 0:
            return False
        try:
            parts = len(adapter.render(build_outbound(row, policy.Decision(True))))
        except RenderError:
            return False
        if row["parts_done"] < parts:
            return False
        await self._recorder.record_sent(row["outbox_id"], row["message_id"], [], to_iso(self._clock()),
                                         messaging_type=row["messaging_type"], tag=row["tag"],
                                         conversation_id=row["conversation_id"])
        return True

    async def _attempt(self, row: dict[str, Any]) -> str:
        channel_type = row["channel_type"]
        adapter = adapter_for(channel_type)
        if await self._settled_already(row, adapter):
            return "sent"
        if row["channel_status"] != "active" or not row["access_token_enc"]:
            code = "channel_needs_reauth" if row["channel_status"] == "needs_reauth" else "channel_disconnected"
            await self._fail(row, code, f"the channel is {row['channel_status'].replace('_', ' ')}; reconnect it")
            return "blocked"
        if row["payload"].get("public_reply_to"):
            return await self._public_reply(row, adapter)
        decision = self._decide(row)
        if not decision.allowed:
            await self._fail(row, decision.code, decision.reason or "not allowed by Meta's policy")
            return "blocked"
        try:
            bodies = render_parts(adapter, build_outbound(row, decision), row["message_id"])
        except RenderError as exc:
            await self._fail(row, "render_error", str(exc))
            return "failed"
        account = self._account(row)
        limiter = self._limiters.for_channel(
            row["channel_id"], row["rate_limit"] or self._settings.rate_limit_for(channel_type)
        )
        sent_ids: list[str] = []
        for index in range(row["parts_done"], len(bodies)):
            await self._respect_hold(row["channel_id"])
            async with self._slot(row, limiter) as lease:
                timer = self._timers.get(channel_type)
                if timer is None:
                    timer = self._timers[channel_type] = self._metrics.send_seconds.labels(channel=channel_type)
                with timer.time():
                    result = await adapter.send(self._wire, self._settings, account, bodies[index])
                if result.in_doubt:
                    lease.in_doubt(self._settings.http_timeout_seconds)
            if result.ok:
                if result.external_id:
                    sent_ids.append(result.external_id)
                if index + 1 < len(bodies):
                    await self._db.write(store.mark_part_sent, row["outbox_id"], index + 1)
                continue
            assert result.error is not None  # adapters return an error whenever ok is False
            return await self._after_error(row, result.error, result.retry_after)
        await self._recorder.record_sent(row["outbox_id"], row["message_id"], sent_ids, to_iso(self._clock()),
                                         messaging_type=decision.messaging_type, tag=decision.tag,
                                         conversation_id=row["conversation_id"])
        return "sent"

    @contextlib.asynccontextmanager
    async def _slot(self, row: dict[str, Any], limiter: SlidingWindowLimiter) -> AsyncIterator[Lease]:
        """A slot of the channel's limiter for one request (see the module docstring)."""
        channel_id = row["channel_id"]
        if row["priority"] > 0:
            turn = self._bulk_turns.setdefault(channel_id, asyncio.Lock())
            async with turn:
                # Not while a reply or flow message claimed for this channel is being sent
                # (from its claim until its outcome is recorded): a queue of broadcast
                # messages would otherwise take the channel's free slots ahead of it.
                while self._urgent.get(channel_id):
                    await self._urgent_done.setdefault(channel_id, asyncio.Event()).wait()
                await limiter.acquire()
        else:
            await limiter.acquire()
        lease = Lease()
        try:
            yield lease
        finally:
            limiter.release(lease.hold)

    async def _respect_hold(self, channel_id: int) -> None:
        """Wait while Meta's throttling holds this channel (see :meth:`_after_error`)."""
        loop = asyncio.get_running_loop()
        while (wait := self._holds.get(channel_id, 0.0) - loop.time()) > 0:
            await asyncio.sleep(wait)

    def _account(self, row: dict[str, Any]) -> ChannelAccount:
        """The channel's account with its token decrypted, kept per (channel, ciphertext): a
        reconnected channel has a new ciphertext, so a new token is never missed."""
        key = (row["channel_id"], row["access_token_enc"], row["channel_external_id"], row["page_id"], row["waba_id"])
        account = self._accounts.get(key)
        if account is None:
            if len(self._accounts) > 64:
                self._accounts.clear()
            account = self._accounts[key] = self._decrypt_account(row)
        return account

    def _decrypt_account(self, row: dict[str, Any]) -> ChannelAccount:
        channel_type = row["channel_type"]
        return ChannelAccount(
            id=row["channel_id"],
            type=channel_type,
            external_id=row["channel_external_id"],
            access_token=self._fields.decrypt(
                row["access_token_enc"], token_context(channel_type, row["channel_external_id"])
            ),
            page_id=row["page_id"],
            waba_id=row["waba_id"],
        )

    async def _public_reply(self, row: dict[str, Any], adapter: ChannelAdapter) -> str:
        channel_type = row["channel_type"]
        limiter = self._limiters.for_channel(
            row["channel_id"], row["rate_limit"] or self._settings.rate_limit_for(channel_type)
        )
        await self._respect_hold(row["channel_id"])
        async with limiter.slot() as lease:
            result = await adapter.reply_to_comment(
                self._wire, self._settings, self._account(row), row["payload"]["public_reply_to"], row["text"] or ""
            )
            if result.in_doubt:
                lease.in_doubt(self._settings.http_timeout_seconds)
        if not result.ok:
            assert result.error is not None
            return await self._after_error(row, result.error, result.retry_after)
        await self._recorder.record_sent(row["outbox_id"], row["message_id"],
                                         [result.external_id] if result.external_id else [], to_iso(self._clock()),
                                         conversation_id=row["conversation_id"])
        return "sent"

    async def _after_error(self, row: dict[str, Any], error: GraphError, retry_after: float | None) -> str:
        verdict = retry.classify(error)
        now = self._clock()
        log.info(
            "send failed",
            extra={"message_id": row["message_id"], "channel_id": row["channel_id"],
                   "code": error.code, "subcode": error.subcode, "http_status": error.http_status,
                   "fbtrace_id": error.fbtrace_id, "verdict": verdict, "attempt": row["attempts"]},
        )
        if verdict == "reauth":
            await self._db.write(
                _fail_with_reauth, row["channel_id"], row["outbox_id"], row["message_id"], error, to_iso(now)
            )
            return "reauth"
        if verdict == "retry" and row["attempts"] < self._settings.send_max_attempts:
            delay = retry.backoff_seconds(
                row["attempts"], base=self._settings.send_backoff_base_seconds, error=error,
                retry_after=retry_after, rng=self._rng,
            )
            if error.code in retry.THROTTLE_CODES:
                loop = asyncio.get_running_loop()
                hold = self._holds.get(row["channel_id"], 0.0)
                self._holds[row["channel_id"]] = max(hold, loop.time() + delay)
            await self._db.write(
                store.mark_retry, row["outbox_id"], next_attempt_at=to_iso(now + timedelta(seconds=delay)),
                error=f"code {error.code}" if error.code is not None else error.message,
            )
            return "retried"
        if error.code == MARKETING_STOPPED:
            await self._db.write(_fail_opted_out, row["contact_id"], row["outbox_id"], row["message_id"],
                                 error.message, to_iso(now))
            return "failed"
        code = str(error.code) if error.code is not None else (
            f"http_{error.http_status}" if error.http_status else "network_error"
        )
        await self._fail(row, code, error.message)
        return "failed"
