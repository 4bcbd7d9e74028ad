"""Restart-to-ready of this tree against another commit, side by side in one run: alternating
restarts on one data directory, so that both sides see the same machine (its speed changes from
minute to minute: BENCHMARKS.md, "Footprint").

    .venv/bin/python bench/restart_compare.py --before 01eac31 [--rounds 8] [--deliveries 500]

``--before`` is exported with ``git archive`` into the work directory and compiled, as an install
would be; this tree is compiled too. Both sides run as ``python -m appliance.cli serve`` with
their tree first on ``PYTHONPATH``, on one data directory that this tree's cold start created and
``--deliveries`` signed deliveries filled (the two commits must share their migrations). Each
round restarts both sides, in turn order rotating, and measures for each: process start to
``GET /readyz`` 200 (wall and CPU seconds), a signed delivery posted right then (seconds to its
200) and process start until ``GET /metrics`` answers (only the full app answers it; with the
front door, appliance/web/front.py, it opens after ready; without, at ready). Prints medians per
side and after/before ratios; writes ``bench/results/restart-compare-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import REPO, RESULTS_DIR, BenchError, appliance_env, code_version, free_port, machine, median  # noqa: E402
from events import deliveries  # noqa: E402
from footprint import APP_SECRET, _after_ready, _populate, _start, _stop  # noqa: E402


def _export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _compile(tree: Path, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "appliance"), str(tree / "migrations")],
                   env=env, check=True)


def _argv(port: int, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "appliance.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]


def main() -> int:
    parser = argparse.ArgumentParser(description="Restart-to-ready of this tree against another commit.")
    parser.add_argument("--before", required=True, help="the commit to compare with (e.g. 01eac31)")
    parser.add_argument("--rounds", type=int, default=8, help="restarts per side (default 8)")
    parser.add_argument("--deliveries", type=int, default=500, help="deliveries stored first (default 500)")
    args = parser.parse_args()

    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = (RESULTS_DIR / f"restart-compare-{stamp}").resolve()
    data_dir = work / "data"
    env = appliance_env(master_key=os.urandom(32), app_secret=APP_SECRET)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    trees = {"before": _export(args.before, work / "before"), "after": REPO}
    envs = {side: dict(env, PYTHONPATH=str(tree)) for side, tree in trees.items()}
    for side, tree in trees.items():
        _compile(tree, envs[side])
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
          f"load average {info['loadavg_1m_at_start']}", flush=True)
    print(f"before: {args.before}; after: this tree ({code_version()})", flush=True)

    port = free_port()
    # cwd: `python -m` puts it first on sys.path, so each side runs in its own tree.
    server, _, _ = _start("cold", _argv(port, data_dir), envs["after"], port, work, cwd=trees["after"])
    try:
        _populate(port, args.deliveries)
    finally:
        _stop(server)

    at_ready = iter(deliveries(2 * args.rounds, "restart-compare"))
    samples: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for n in range(args.rounds):
        for side in (("before", "after") if n % 2 == 0 else ("after", "before")):
            server, ready, cpu = _start(f"{side}-{n}", _argv(port, data_dir), envs[side], port, work, cwd=trees[side])
            try:
                opened = _after_ready(server, next(at_ready))
            finally:
                _stop(server)
            samples[side].append({"ready_s": round(ready, 3), "cpu_to_ready_s": round(cpu, 3), **opened,
                                  "loadavg_1m": round(os.getloadavg()[0], 2)})
            print(f"round {n + 1} {side:>6}: ready {ready:.3f} s ({cpu:.3f} CPU-s), delivery acknowledged in "
                  f"{opened['ack_at_ready_s'] * 1000:.1f} ms, full app open at {opened['app_open_s']:.3f} s",
                  flush=True)

    keys = ("ready_s", "cpu_to_ready_s", "ack_at_ready_s", "app_open_s")
    medians = {side: {k: round(median([s[k] for s in runs]), 4) for k in keys} for side, runs in samples.items()}
    ratios = {k: round(medians["after"][k] / medians["before"][k], 3) for k in keys if medians["before"][k]}
    result: dict[str, Any] = {
        "benchmark": "restart-compare", "time": stamp, "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": info, "before": args.before, "after": code_version(), "medians": medians,
        "ratios_after_over_before": ratios, "samples": samples,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"restart-compare-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    print()
    for side in ("before", "after"):
        m = medians[side]
        print(f"{side:>6}: ready {m['ready_s']:.3f} s, {m['cpu_to_ready_s']:.3f} CPU-s to ready, delivery at ready "
              f"{m['ack_at_ready_s'] * 1000:.1f} ms, full app open {m['app_open_s']:.3f} s (medians of {args.rounds})")
    print("after/before: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    print(f"result: {out}")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
