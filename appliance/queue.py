"""The task queue: huey on SQLite (``DATA_DIR/queue.db``), consumed inside the web process.

Tasks carry ids and times, never content, so the queue file holds nothing worth encrypting
(DESIGN invariant 1); the content they act on lives in the encrypted workspace. Each domain
registers its tasks in ``<domain>/tasks.py`` with a ``register(huey, runtime)`` function, so
tasks close over the running appliance instead of reaching for globals. Tests build the queue
with ``immediate=True`` (huey runs tasks at once, in memory).
"""

from __future__ import annotations

import logging
from pathlib import Path

from huey import SqliteHuey
from huey.consumer import Consumer

__all__ = ["create_huey", "InProcessConsumer"]

log = logging.getLogger("aat.queue")


def create_huey(data_dir: Path, *, immediate: bool = False) -> SqliteHuey:
    return SqliteHuey(
        name="aat-appliance",
        filename=str(data_dir / "queue.db"),
        immediate=immediate,
        utc=True,
        fsync=True,
        results=False,  # tasks return small summaries for the log; nothing is kept
    )


class InProcessConsumer(Consumer):
    """huey's consumer, started by the app's lifespan: the web server owns the signals."""

    def _set_signal_handlers(self) -> None:
        pass

    def start(self) -> None:  # type: ignore[override]
        super().start()
        log.info("queue consumer started", extra={"workers": self.workers})
