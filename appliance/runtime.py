"""Everything a running appliance holds, created and closed by the app's lifespan.

A plain class rather than a dataclass: Litestar introspects dataclass annotations of
injected dependencies, and the processor and sender types are only imported for typing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from appliance.ingest.receiver import WebhookReceiver
from appliance.metrics import Metrics
from appliance.settings import Settings
from appliance.store.gateway import Gateway
from appliance.store.keys import FieldCipher
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now

if TYPE_CHECKING:
    from appliance.flows.effects import CallOut, CallResult
    from appliance.ingest.processor import JournalProcessor
    from appliance.outbox.sender import Sender

# An executor performs one outside call of a flow (AI reply, HTTP request, Google Sheets row)
# and returns its result; the AI/integrations issue registers them.
CallExecutor = Callable[["Runtime", int, "CallOut"], Awaitable["CallResult"]]

__all__ = ["Runtime", "CallExecutor"]

log = logging.getLogger("aat.runtime")


class Runtime:
    def __init__(
        self, *, settings: Settings, workspace: Workspace, http: httpx.AsyncClient, metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.workspace = workspace
        self.http = http
        self.metrics = metrics or Metrics()
        self.webhooks = WebhookReceiver(settings=settings, db=workspace.gateway, metrics=self.metrics,
                                        journaled=self._journaled)
        self.processor: JournalProcessor | None = None
        self.sender: Sender | None = None
        self.ready = False
        self.executors: dict[str, CallExecutor] = {}
        self._calls: set[asyncio.Task[None]] = set()
        from appliance.flows.tasks import FollowupDispatcher  # flows.tasks imports this module

        self.followups = FollowupDispatcher(self)
        from appliance.events.hub import EventHub

        self.hub = EventHub(self)

    @property
    def db(self) -> Gateway:
        return self.workspace.gateway

    @property
    def fields(self) -> FieldCipher:
        return self.workspace.fields

    def wake_processor(self) -> None:
        """A delivery was journaled: the processor (once it runs) applies it now."""
        if self.processor is not None:
            self.processor.wake()

    def _journaled(self, journal_id: int, body: bytes) -> None:
        """A delivery was journaled: handed to the processor (once it runs) to apply now."""
        if self.processor is not None:
            self.processor.hand(journal_id, body)

    def wake_sender(self) -> None:
        if self.sender is not None:
            self.sender.wake()

    def call_kinds(self) -> frozenset[str]:
        return frozenset(self.executors)

    def start_call(self, run_id: int, call: CallOut) -> None:
        """Run a flow's outside call on the event loop and feed its result back to the run."""
        task = asyncio.create_task(self._run_call(run_id, call))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _run_call(self, run_id: int, call: CallOut) -> None:
        from appliance.flows import runner
        from appliance.flows.effects import CallResult

        try:
            result = await self.executors[call.kind](self, run_id, call)
        except Exception as exc:  # noqa: BLE001 - an executor bug becomes the step's error
            log.error("flow call failed", extra={"run_id": run_id, "kind": call.kind, "error": type(exc).__name__})
            result = CallResult(step=call.step, ok=False, error="internal_error")
        followups = await self.db.write(
            runner.on_call_result, run_id, result, iso_now(), seed=random.randrange(2**31),
            executors=self.call_kinds(),
        )
        self.followups.dispatch(followups)
