"""Instructions per bot reply on the database path (reply_sql.py's work), counted by valgrind:
a load-independent measure for comparing two trees on a shared machine (BENCHMARKS.md, "Inbound
message -> bot reply"). Needs valgrind.

    python bench/_reply_instructions.py [--replies 320] [--batch 32] TREE [TREE ...]

For each tree (a ``git archive`` of a commit, or the repository), runs a fresh interpreter under
``valgrind --tool=cachegrind --cache-sim=no`` with that tree first on the path, twice: once doing
reply_sql.py's setup and a warm-up of 64 replies, once doing the same and then ``--replies`` more,
``--batch`` deliveries at a time, as fixed writer jobs (one job journals the batch, the
processor's own chunk function applies it and claims the replies, one job records them sent):
the same jobs and commits in every run, so that the count does not depend on how the threads
happened to interleave (with concurrent jobs, group commit made runs differ by ~10 %). The difference over ``--replies`` is the instructions per reply of
every thread (the writer's and the event loop's), with imports, setup and warm-up cancelled out.
Prints one JSON line: thousands of instructions per reply per tree.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
WARMUP = 64


def _inner(replies: int, batch: int) -> None:
    sys.path.insert(0, str(BENCH))
    import reply_sql  # noqa: PLC0415 - from the tree on PYTHONPATH
    from _support import RESULTS_DIR  # noqa: PLC0415
    from reply_load import build_events  # noqa: PLC0415

    from appliance.ingest import journal, processor  # noqa: PLC0415
    from appliance.outbox import store as outbox  # noqa: PLC0415
    from appliance.settings import Settings  # noqa: PLC0415
    from appliance.store.workspace import open_workspace  # noqa: PLC0415
    from appliance.timeutil import iso_now  # noqa: PLC0415

    def one_batch(workspace: Any, bodies: list[bytes]) -> None:
        # What the webhook route, the JournalProcessor and the sender do, as fixed writer jobs (no
        # concurrency: the same jobs and commits in every run): the batch's acknowledgements in
        # one job, its rows applied in the processor's chunks (each claiming its replies), then
        # every reply recorded sent in one job.
        workspace.gateway.write_sync(lambda db: [journal.append(db, body, iso_now()) for body in bodies])
        rows = workspace.gateway.write_sync(journal.pending, len(bodies))
        parsed = [processor._parse(row["id"], row["body"]) for row in rows]
        claimed: list[dict[str, Any]] = []
        for chunk in processor._chunks(parsed):
            claimed += workspace.gateway.write_sync(processor._apply_batch, chunk, frozenset(), 256)[1]
        assert len(claimed) == len(bodies), (len(claimed), len(bodies))
        workspace.gateway.write_sync(lambda db: [outbox.mark_sent(
            db, row["outbox_id"], row["message_id"], [f"wamid.out{row['message_id']}"], iso_now()) for row in claimed])

    data_dir = Path(tempfile.mkdtemp(prefix="reply-instr-", dir=RESULTS_DIR))
    settings = Settings(data_dir=data_dir, master_key=base64.b64encode(b"\x07" * 32).decode(),
                        log_level="warning", _env_file=None)
    workspace = open_workspace(settings)
    try:
        workspace.gateway.write_sync(reply_sql._setup)
        bodies = [e.request.split(b"\r\n\r\n", 1)[1] for e in build_events(3, WARMUP + replies, 0, 1_790_000_000)]
        for start in range(0, len(bodies), batch):
            one_batch(workspace, bodies[start:start + batch])
    finally:
        workspace.close()
        shutil.rmtree(data_dir)


def _count(tree: Path, replies: int, batch: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--inner", str(replies), "--batch", str(batch)],
        env=env, capture_output=True, text=True, check=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path)
    parser.add_argument("--replies", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner is not None:
        _inner(args.inner, args.batch)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install -y valgrind")
    result = {}
    for tree in args.trees:
        base = _count(tree, 0, args.batch)
        full = _count(tree, args.replies, args.batch)
        result[str(tree)] = round((full - base) / args.replies / 1000, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
