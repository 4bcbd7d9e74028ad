"""reply.py's pywa side: pywa's echo bot (``bench/pywa_echo.py``) as its own server process.

The bot gets the same app secret and access token as the appliance and the Graph sink's address
(``BENCH_GRAPH_BASE``: pywa has no base-URL option, see pywa_echo.py); no ``AAT_`` setting
reaches it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from _support import BENCH_DIR, Server, free_port, wait_ready
from graph_sink import GraphSink
from reply_load import ACCESS_TOKEN, APP_SECRET

__all__ = ["start_pywa"]


def start_pywa(work: Path, tag: str, sink: GraphSink) -> Server:
    """Start the echo bot (blocking: call through ``asyncio.to_thread``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AAT_", "BENCH_"))}
    env.update(BENCH_APP_SECRET=APP_SECRET, BENCH_ACCESS_TOKEN=ACCESS_TOKEN, BENCH_GRAPH_BASE=sink.base_url,
               PYTHONUNBUFFERED="1")
    argv = [sys.executable, str(BENCH_DIR / "pywa_echo.py"), "--port", str(port)]
    server = Server("pywa", argv, env, port, work, work / f"pywa-{tag}.log")
    server.start()
    wait_ready(server)
    return server
