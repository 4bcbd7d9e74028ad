"""Cost of processing the webhook journal as the workspace grows, without HTTP or wrk.

    .venv/bin/python bench/apply_cost.py [--steps 8] [--per-step 4000]

Opens a fresh workspace (a temporary data directory on the repository's disk), then, step after
step, journals ``--per-step`` realistic deliveries (``bench/events.py``: Messenger, Instagram,
WhatsApp texts from a pool of 2,000 senders per channel) and lets the appliance's own
``JournalProcessor`` process them. Reports, per step, the CPU seconds per delivery the processing
took (process CPU time, all threads: parsing on the loop, applying on the writer). On a healthy
schema the cost stays flat as rows accumulate; a cost that grows with the step is a query that
reads more of a table as the table grows.

A last, unmeasured step records every SQL statement and prints the statements per delivery and the
query plan of every statement that scans a whole table (``SCAN`` in ``EXPLAIN QUERY PLAN``).
The result is written to ``bench/results/apply-cost-<time>.json``.
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

from _support import RESULTS_DIR, code_version, machine, sql_shape  # noqa: E402
from events import deliveries  # noqa: E402

from appliance.ingest import journal  # noqa: E402
from appliance.ingest.processor import JournalProcessor  # noqa: E402
from appliance.metrics import Metrics  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.store.workspace import open_workspace  # noqa: E402
from appliance.timeutil import iso_now  # noqa: E402


def _journal(workspace: Any, bodies: list[bytes]) -> None:
    for start in range(0, len(bodies), 64):
        chunk = bodies[start:start + 64]
        workspace.gateway.write_sync(lambda db, c=chunk: [journal.append(db, body, iso_now()) for body in c])


async def _process(processor: JournalProcessor) -> None:
    await processor.drain()


def main() -> int:
    parser = argparse.ArgumentParser(description="Journal processing cost per delivery as the workspace grows.")
    parser.add_argument("--steps", type=int, default=8, help="steps (default 8)")
    parser.add_argument("--per-step", type=int, default=4000, help="deliveries per step (default 4000)")
    args = parser.parse_args()

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="apply-cost-", dir=RESULTS_DIR))
    settings = Settings(data_dir=data_dir, master_key=base64.b64encode(os.urandom(32)).decode(),
                        log_level="warning", _env_file=None)
    workspace = open_workspace(settings)
    stream = deliveries(args.steps * args.per_step + 1000, "ac")
    steps: list[dict[str, Any]] = []
    statements: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    try:
        for step in range(args.steps + 1):
            traced = step == args.steps  # one more, unmeasured step records the SQL
            count = min(args.per_step, 1000) if traced else args.per_step
            _journal(workspace, [next(stream) for _ in range(count)])
            if traced:
                def trace(sql: str) -> None:
                    shape = sql_shape(sql)
                    statements[shape] += 1
                    examples.setdefault(shape, sql)

                workspace.gateway.write_sync(lambda db: db.conn.set_trace_callback(trace))
            loop = asyncio.new_event_loop()
            try:
                processor = loop.run_until_complete(_make_processor(workspace))
                cpu = time.process_time()
                wall = time.perf_counter()
                loop.run_until_complete(_process(processor))
                cpu = time.process_time() - cpu
                wall = time.perf_counter() - wall
            finally:
                loop.close()
            if traced:
                workspace.gateway.write_sync(lambda db: db.conn.set_trace_callback(None))
                traced_count = count
                break
            rows = workspace.gateway.read_sync(lambda db: db.execute("SELECT count(*) FROM messages").fetchone()[0])
            steps.append({"step": step + 1, "messages_before": rows - count, "cpu_ms_per_delivery":
                          round(1000 * cpu / count, 3), "wall_ms_per_delivery": round(1000 * wall / count, 3)})
            print(f"step {step + 1}: {rows - count:>7,} messages already stored -> "
                  f"{steps[-1]['cpu_ms_per_delivery']:.3f} CPU-ms per delivery "
                  f"({steps[-1]['wall_ms_per_delivery']:.3f} ms wall)", flush=True)

        scans = []
        for shape, count in statements.most_common():
            if shape.split()[0].upper() not in ("SELECT", "UPDATE", "DELETE", "INSERT"):
                continue
            plan = workspace.gateway.read_sync(
                lambda db, sql=examples[shape]: [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()])
            if any(line.startswith("SCAN") for line in plan):
                scans.append({"statement": shape, "per_delivery": round(count / traced_count, 2), "plan": plan})
    finally:
        workspace.close()
        shutil.rmtree(data_dir)

    first, last = steps[0]["cpu_ms_per_delivery"], steps[-1]["cpu_ms_per_delivery"]
    per_delivery = sum(statements.values()) / traced_count
    print(f"\nprocessing cost: {first:.3f} CPU-ms per delivery on an empty workspace, {last:.3f} after "
          f"{steps[-1]['messages_before']:,} messages ({last / first:.2f}x)")
    print(f"{per_delivery:.1f} SQL statements per delivery (savepoints and commits included), "
          f"{len(statements)} distinct")
    for scan in scans:
        print(f"full scan, {scan['per_delivery']}/delivery: {scan['statement'][:160]}\n    plan: {scan['plan']}")
    out = RESULTS_DIR / f"apply-cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "benchmark": "apply-cost", "command": " ".join([".venv/bin/python", *sys.argv]), "machine": machine(),
        "code": code_version(), "steps": steps, "statements_per_delivery": round(per_delivery, 2),
        "statements": {k: round(v / traced_count, 3) for k, v in statements.most_common()},
        "full_scans": scans,
    }, indent=2))
    print(f"result: {out}")
    return 0


async def _make_processor(workspace: Any) -> JournalProcessor:
    # The processor's asyncio primitives belong to the loop it runs on.
    return JournalProcessor(gateway=workspace.gateway, metrics=Metrics())


if __name__ == "__main__":
    sys.exit(main())
