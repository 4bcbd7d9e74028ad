"""Everything a running appliance holds, created and closed by the app's lifespan.

A plain class rather than a dataclass: Litestar introspects dataclass annotations of
injected dependencies, and the processor and sender types are only imported for typing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from appliance.metrics import Metrics
from appliance.settings import Settings
from appliance.store.gateway import Gateway
from appliance.store.keys import FieldCipher
from appliance.store.workspace import Workspace

if TYPE_CHECKING:
    from appliance.ingest.processor import JournalProcessor
    from appliance.outbox.sender import Sender

__all__ = ["Runtime"]


class Runtime:
    def __init__(self, *, settings: Settings, workspace: Workspace, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.workspace = workspace
        self.http = http
        self.metrics = Metrics()
        self.processor: JournalProcessor | None = None
        self.sender: Sender | None = None
        self.ready = False

    @property
    def db(self) -> Gateway:
        return self.workspace.gateway

    @property
    def fields(self) -> FieldCipher:
        return self.workspace.fields

    def wake_sender(self) -> None:
        if self.sender is not None:
            self.sender.wake()
