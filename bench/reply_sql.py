"""SQL statements the writer runs per bot reply (no HTTP, no Graph): a profiling aid for reply.py.

    .venv/bin/python bench/reply_sql.py [--events 192] [--cpu-events 1000] [--batch 1 32] [--show]

Opens a fresh encrypted workspace (temporary, on the repository's disk), connects a WhatsApp
number and publishes reply.py's flow through the store functions the API calls, then for each
``--batch`` size: journals that many of reply.py's deliveries (one new contact each) the way the
webhook route does (one ``journal.append`` job each, group-committed), lets the appliance's own
``JournalProcessor`` apply them (contact, conversation, message, flow run, outbox row), and does
what the sender does with the database for each reply (takes the replies the processor claimed,
``claim_due`` for any other, then ``mark_sent`` as if Meta accepted it). An sqlite3 trace callback on the writer connection (set here, never in the
appliance) counts every statement, BEGIN/SAVEPOINT/COMMIT included, per phase: ``ack``,
``apply``, ``send``; the firings of schema triggers are counted apart (``trigger``, not in the
total). Before that, ``--cpu-events`` other deliveries go the same way untraced, timed by the
process's CPU clock (all threads): CPU-ms per reply of the database path alone, and the writer
thread's own CPU clock (read by a write job before and after; the webhook's parsing on the event
loop is not in it): the one core the reply path cannot spread. ``--show``
prints each distinct statement with its count per reply.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import RESULTS_DIR, sql_shape
from events import WABA_ID
from reply_load import FLOW, PHONE_NUMBER_IDS, build_events

from appliance.connections.store import connect_channel
from appliance.flows import store as flows
from appliance.ingest import journal
from appliance.ingest.processor import JournalProcessor
from appliance.metrics import Metrics
from appliance.outbox import store as outbox
from appliance.settings import Settings
from appliance.store.workspace import open_workspace
from appliance.timeutil import iso_now


def _setup(db: Any) -> None:
    now = iso_now()
    for number in PHONE_NUMBER_IDS:  # the numbers reply.py's deliveries alternate between
        connect_channel(db, channel_type="whatsapp", external_id=number, token_enc="not-used",
                        name="bench", waba_id=WABA_ID, page_id=None, rate_limit=1000, now=now)
    flow = flows.create_flow(db, FLOW, now)
    flows.publish(db, flow["id"], FLOW, now)


def _thread_cpu(db: Any) -> float:
    """The CPU clock of the thread that runs this job: the writer's (a write job)."""
    return time.thread_time()


class _Claimed:
    """Stands in for the sender when the processor hands it the replies it claimed (an
    appliance whose processor has no ``sender`` attribute claims nothing: the older path)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def free_slots(self) -> int:
        return 256

    def start_claimed(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)


async def _round(workspace: Any, bodies: list[bytes], batch: int, phase: list[str]) -> int:
    processor = JournalProcessor(gateway=workspace.gateway, metrics=Metrics(), batch=64)
    claimed = _Claimed()
    processor.sender = claimed  # type: ignore[assignment]
    sent = 0
    for start in range(0, len(bodies), batch):
        chunk = bodies[start:start + batch]
        phase[0] = "ack"
        await asyncio.gather(*(workspace.gateway.write(journal.append, body, iso_now()) for body in chunk))
        phase[0] = "apply"
        await processor.drain()
        phase[0] = "send"
        # The sender claims what is due (unless the processor claimed it in its own job: then
        # the sender is not woken), sends, and records each answer as its own job.
        rows, claimed.rows = claimed.rows, []
        if not rows:
            rows = await workspace.gateway.write(outbox.claim_due, iso_now(), 256)
        await asyncio.gather(*(workspace.gateway.write(
            outbox.mark_sent, row["outbox_id"], row["message_id"], [f"wamid.out{row['message_id']}"], iso_now())
            for row in rows))
        sent += len(rows)
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description="SQL statements per bot reply, by phase.")
    parser.add_argument("--events", type=int, default=192, help="deliveries per batch size (default 192)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32],
                        help="deliveries arriving together (default: 1 and 32)")
    parser.add_argument("--cpu-events", type=int, default=1000,
                        help="untraced deliveries per batch size for the CPU time (default 1000)")
    parser.add_argument("--show", action="store_true", help="print every distinct statement")
    args = parser.parse_args()

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="reply-sql-", dir=RESULTS_DIR))
    settings = Settings(data_dir=data_dir, master_key=base64.b64encode(os.urandom(32)).decode(),
                        log_level="warning", _env_file=None)
    workspace = open_workspace(settings)
    result: dict[str, Any] = {}
    try:
        workspace.gateway.write_sync(_setup)
        start = 0
        for index, batch in enumerate(args.batch):
            events = build_events(index + 1, args.events, start, 1_790_000_000)
            start += args.events
            bodies = [e.request.split(b"\r\n\r\n", 1)[1] for e in events]
            # First, untraced: the process's CPU time per reply for the same work (parsing,
            # applying, claiming, recording; no HTTP), on other contacts.
            cpu_events = build_events(50 + index, args.cpu_events, 0, 1_790_000_000)
            cpu_bodies = [e.request.split(b"\r\n\r\n", 1)[1] for e in cpu_events]
            loop = asyncio.new_event_loop()
            try:
                cpu = time.process_time()
                writer = workspace.gateway.write_sync(_thread_cpu)
                loop.run_until_complete(_round(workspace, cpu_bodies, batch, ["ack"]))
                writer_ms = round(1000 * (workspace.gateway.write_sync(_thread_cpu) - writer) / len(cpu_bodies), 3)
                cpu_ms = round(1000 * (time.process_time() - cpu) / len(cpu_bodies), 3)
            finally:
                loop.close()
            counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
            phase = ["ack"]

            last = [""]

            def trace(sql: str, counts: Any = counts, phase: list[str] = phase, last: list[str] = last) -> None:
                # Python hands the callback the top-level statement again for every trigger it
                # fires (sqlite3_expanded_sql): the same text twice in a row is a trigger.
                name = "trigger" if sql == last[0] else phase[0]
                last[0] = sql
                counts[name][sql_shape(sql)] += 1

            workspace.gateway.write_sync(lambda db, trace=trace: db.conn.set_trace_callback(trace))
            loop = asyncio.new_event_loop()
            try:
                sent = loop.run_until_complete(_round(workspace, bodies, batch, phase))
            finally:
                loop.close()
            workspace.gateway.write_sync(lambda db: db.conn.set_trace_callback(None))
            if sent != len(bodies):
                raise SystemExit(f"{sent} replies queued for {len(bodies)} deliveries")
            per = {name: round(sum(c.values()) / sent, 2) for name, c in counts.items()}
            total = round(sum(v for k, v in per.items() if k != "trigger"), 2)
            result[f"batch_{batch}"] = {"per_reply": per, "total": total, "cpu_ms_per_reply": cpu_ms,
                                        "writer_cpu_ms_per_reply": writer_ms, "statements": {
                name: {k: round(v / sent, 2) for k, v in c.most_common()} for name, c in counts.items()}}
            print(f"{batch:>3} deliveries together: {total:.1f} writer statements per reply ("
                  + ", ".join(f"{k} {v:.1f}" for k, v in per.items()) + f"), {cpu_ms:.3f} CPU-ms per reply"
                  + f" (writer thread {writer_ms:.3f})")
            if args.show:
                for name, c in counts.items():
                    for shape, n in c.most_common():
                        print(f"  {name:5} {n / sent:6.2f}  {shape[:150]}")
    finally:
        workspace.close()
        shutil.rmtree(data_dir)
    print(json.dumps({k: v["per_reply"] | {"total": v["total"], "cpu_ms": v["cpu_ms_per_reply"],
                                           "writer_cpu_ms": v["writer_cpu_ms_per_reply"]}
                      for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
