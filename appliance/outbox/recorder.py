"""Group commit of the sender's outcomes: many small writes in one gateway job.

:class:`Recorder`: the outcomes of many sends are written in one gateway job instead of one job
each. At most one such job is in the writer at a time; outcomes arriving meanwhile wait for the
next one, so the batch grows with the rate and a commit is shared by everything that finished
during the previous one (32 replies in flight, or a broadcast at 1,000 a second: BENCHMARKS.md).
Every outcome runs in its own savepoint: one that fails rolls back alone and only its caller gets
the exception. A caller's await returns once its outcome is committed. The batch's recorded
sends (:func:`appliance.outbox.store.mark_sent` of a single-request message) are written
together first, by :func:`appliance.outbox.store.mark_sent_many`, with exactly the rows and
events ``mark_sent`` writes one by one; only if that fails are they run one by one.

With a :class:`NextClaims` (the sender), the same transaction then claims what became due in
the conversations of the batch's recorded sends (``outbox.claim_due``: the next message of a
flow that sends several, a reply queued while the one before it was in flight), up to the
sender's free slots plus the sends just recorded, and hands the rows to ``start_claimed``
after the commit: the sender needs no claim round after a send. If that claim fails, the
sender is woken to claim them itself.

Crash safety is the outbox's: a message is durably ``sending`` (claimed) before its request
leaves, and an outcome not yet committed at a SIGKILL leaves it ``sending``, i.e. in doubt,
which recovery settles from Meta's status or echo before it would ever send it again
(:func:`appliance.outbox.store.recover_in_doubt`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from appliance.outbox import store
from appliance.store.gateway import Gateway
from appliance.store.savepoint import savepoint

__all__ = ["NextClaims", "Recorder"]

class NextClaims(Protocol):
    """Who starts what a batch claims (``appliance.outbox.sender.Sender``)."""

    def free_slots(self) -> int: ...

    def claim_now(self) -> str:
        """The time a claim compares ``next_attempt_at`` with (the sender's clock)."""
        ...

    def start_claimed(self, rows: list[dict[str, Any]]) -> None: ...

    def wake(self) -> None: ...

class _Item(NamedTuple):
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    sent: bool  # a mark_sent of a single-request message: mark_sent_many can write it
    conversation: int | None = None  # a recorded send's conversation: claim what is due next there


def _run_each(db: Any, items: list[_Item]) -> list[tuple[bool, Any]]:
    """One gateway job: every item in its own savepoint (see :class:`Recorder`); the recorded
    sends together first, by :func:`appliance.outbox.store.mark_sent_many`, and one by one only
    if that fails."""
    conn = db.conn
    outcomes: list[tuple[bool, Any] | None] = [None] * len(items)
    sent = [i for i, item in enumerate(items) if item.sent]
    if len(sent) > 1:
        try:
            with savepoint(db, "recorded_sends"):
                store.mark_sent_many(db, [(items[i].args, items[i].kwargs) for i in sent])
        except Exception:  # each one alone below, so that only a failing one fails
            if not conn.in_transaction:
                raise
        else:
            for i in sent:
                outcomes[i] = (True, None)
    for index, item in enumerate(items):
        if outcomes[index] is not None:
            continue
        try:
            with savepoint(db, "recorded_item"):
                value = item.fn(db, *item.args, **item.kwargs)
        except Exception as exc:  # handed to that item's caller
            if not conn.in_transaction:
                raise  # the error ended the whole transaction: the gateway fails the job
            outcomes[index] = (False, exc)
            continue
        outcomes[index] = (True, value)
    return outcomes  # type: ignore[return-value]


def _run_and_claim(
    db: Any, items: list[_Item], now: str, limit: int,
) -> tuple[list[tuple[bool, Any]], list[dict[str, Any]] | None]:
    """:func:`_run_each`, then claim up to ``limit`` due rows in the conversations of the
    recorded sends that succeeded (None if that claim failed: nothing of it was written)."""
    outcomes = _run_each(db, items)
    conversations = sorted({item.conversation for item, (ok, _) in zip(items, outcomes, strict=True)
                            if ok and item.conversation is not None})
    if not conversations or limit <= 0:
        return outcomes, []
    return outcomes, store.claim_due_or_nothing(db, now, limit, conversations)  # None: the sender is woken


class Recorder:
    """Group commit of many small writes (see the module docstring). Use on one loop."""

    def __init__(self, gateway: Gateway, next_claims: NextClaims | None = None) -> None:
        self._gateway = gateway
        self._next_claims = next_claims
        self._waiting: list[tuple[_Item, asyncio.Future[Any]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    async def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(db, *args, **kwargs)`` in the next batch; its result once committed."""
        return await self._add(_Item(fn, args, kwargs, sent=False))

    async def record_sent(self, outbox_id: int, message_id: int, external_ids: list[str], now: str, *,
                          messaging_type: str | None = None, tag: str | None = None,
                          conversation_id: int | None = None) -> None:
        """:func:`appliance.outbox.store.mark_sent` in the next batch, written together with
        the batch's other single-request sends; returns once committed. With
        ``conversation_id``, what is due next in that conversation is claimed in the same
        transaction (see the module docstring)."""
        await self._add(_Item(store.mark_sent, (outbox_id, message_id, external_ids, now),
                              {"messaging_type": messaging_type, "tag": tag}, sent=len(external_ids) <= 1,
                              conversation=conversation_id))

    async def _add(self, item: _Item) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                items = [item for item, _ in batch]
                follow = self._next_claims
                try:
                    if follow is None:
                        outcomes, claimed = await self._gateway.write(_run_each, items), []
                    else:
                        limit = follow.free_slots() + sum(item.conversation is not None for item in items)
                        outcomes, claimed = await self._gateway.write(
                            _run_and_claim, items, follow.claim_now(), limit)
                except Exception as exc:  # every caller of the batch gets it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if follow is not None:
                        follow.wake()
                    continue
                if follow is not None:
                    if claimed:
                        follow.start_claimed(claimed)
                    if claimed is None or len(claimed) >= limit:  # failed, or more may be due
                        follow.wake()
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._flushing = False
