"""Where the appliance's time goes under webhook load: py-spy samples of who holds the GIL.

    .venv/bin/python bench/profile_ingest.py [--side appliance|baseline|ingest-only] [--duration 10]

Starts one server the way ``bench/ingest.py`` does, loads it with wrk (same pre-signed
deliveries, same connections), and samples it with ``py-spy record --gil`` (only the thread that
holds the GIL is sampled: on a 2-core machine Python work is what limits throughput). Prints the
share of samples per thread and the functions with the largest inclusive share, and writes the
raw collapsed stacks next to the JSON result (``bench/results/profile-<side>-<time>.txt``, usable
with flamegraph.pl or speedscope). Profiling slows the server down: its throughput is not a
result; use ``bench/ingest.py`` for that.

py-spy comes with the ``bench`` extra (``pip install -e '.[bench]'``); it needs ptrace rights
over the server (root, or ``CAP_SYS_PTRACE``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import RESULTS_DIR, VENV_BIN, BenchError, appliance_env, free_port, missing_tool, wait_ready  # noqa: E402
from ingest import APP_SECRET, DIAGNOSTIC, LUA_SCRIPT, _server, run_wrk, write_events  # noqa: E402


def _frame(text: str) -> str:
    match = re.match(r"(.*?) \((.*?):\d+\)$", text)
    if not match:
        return text
    path = match.group(2).split("site-packages/")[-1]
    return f"{match.group(1)} ({path})"


# Stages of the webhook path, by the function whose frame marks them (inclusive).
STAGES = {
    "HTTP requests: uvicorn + Litestar + handler": "RequestResponseCycle.run_asgi",
    "  the webhook handler (receive_webhook)": "receive_webhook",
    "  handing the write to the writer thread (Gateway.write)": "Gateway.write",
    "  the baseline's handler (receive)": "create_app.<locals>.receive",
    "writer thread (all jobs, transactions, commits)": "Gateway._run_batch",
    "  journal processor: apply on the writer": "_apply_batch",
    "  journal append": "append",
    "journal processor: read + parse on the event loop": "JournalProcessor._process_batch",
    "baseline: insert + commit thread": "create_app.<locals>.store",
}
LOOP_REST = "event loop outside those (transports, selector, thread hand-offs)"
_ON_LOOP = {"RequestResponseCycle.run_asgi", "JournalProcessor._process_batch"}


def summarize(raw: Path, top: int) -> dict[str, object]:
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[re.sub(r"\s*\(\d+\)", "", frames[0]).replace("thread", "").strip(" :")] += n
        names = {_frame(f) for f in frames[1:]}
        for name in names:
            inclusive[name] += n
        functions = {name.split(" (")[0] for name in names}
        for stage, marker in STAGES.items():
            if marker in functions:
                stages[stage] += n
        if frames[0].startswith("thread") and "MainThread" in frames[0] and not functions & _ON_LOOP:
            stages[LOOP_REST] += n
    return {
        "samples": total,
        "threads": {k: round(v / total, 3) for k, v in threads.most_common()},
        "stages": {k: round(stages[k] / total, 3) for k in [*STAGES, LOOP_REST] if stages[k]},
        "inclusive": {k: round(v / total, 3) for k, v in inclusive.most_common(top)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="GIL profile of one server under webhook load.")
    parser.add_argument("--side", choices=["appliance", "baseline", DIAGNOSTIC], default="appliance")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second (default 200)")
    parser.add_argument("--top", type=int, default=40, help="functions to print (default 40)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(VENV_BIN / "py-spy"))
    args = parser.parse_args()
    args.threads, args.timeout = 1, 5
    missing_tool("wrk", "apt-get install -y wrk")
    if shutil.which(args.py_spy) is None:
        raise BenchError("py-spy is not installed; install it with: .venv/bin/pip install -e '.[bench]'")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = RESULTS_DIR / f"profile-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    write_events(work / "events", ["p"], 3000 * args.duration, 1)
    script = work / "replay.lua"
    script.write_text(LUA_SCRIPT.replace("@DATA_DIR@", str(work / "events")))
    env = appliance_env(master_key=os.urandom(32), app_secret=APP_SECRET)
    env.update(BENCH_DB_KEY=os.urandom(32).hex(), BENCH_APP_SECRET=APP_SECRET)
    server = _server(args.side, free_port(), work / "data", env, work).start()
    raw = RESULTS_DIR / f"profile-{args.side}-{stamp}.txt"
    try:
        wait_ready(server)
        spy = subprocess.Popen(
            [args.py_spy, "record", "--pid", str(server.proc.pid), "--gil", "--threads", "--nonblocking",
             "--rate", str(args.rate), "--duration", str(args.duration), "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        result = run_wrk(server.port, script, "p", args, args.duration + 1)
        _, spy_err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            raise BenchError(f"py-spy failed: {spy_err.strip()}")
    finally:
        server.stop()
    summary = summarize(raw, args.top)
    rps = result["requests"] / (result["duration_us"] / 1e6)
    print(f"{args.side} under py-spy: {rps:.0f} req/s (slowed by sampling), {summary['samples']} GIL samples")
    print("GIL held by thread:")
    for name, share in summary["threads"].items():  # type: ignore[union-attr]
        print(f"  {share:6.1%}  {name}")
    print("stages (inclusive share of GIL samples):")
    for name, share in summary["stages"].items():  # type: ignore[union-attr]
        print(f"  {share:6.1%}  {name}")
    print("functions by inclusive share of GIL samples:")
    for name, share in summary["inclusive"].items():  # type: ignore[union-attr]
        print(f"  {share:6.1%}  {name}")
    out = RESULTS_DIR / f"profile-{args.side}-{stamp}.json"
    out.write_text(json.dumps({"side": args.side, "rps_under_profiler": round(rps, 1), **summary}, indent=2))
    print(f"raw stacks: {raw}\nresult: {out}")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
