"""Every benchmark of BENCHMARKS.md in one sitting, on one machine, one after the other.

    .venv/bin/python bench/all.py [--quick] [--only ingest,reply,...] [--skip web,export]

Runs each benchmark below as its own command (printed before it runs, so any figure can be
reproduced alone), never two at once, and reads the result file it wrote. Prints one table of
figure / value / target / met, with the machine and the load average before each benchmark, and
writes it to ``bench/results/all-<time>.json`` and ``.md``. ``--quick`` uses smaller sizes (about
10 minutes instead of about 30 on the idle 2-vCPU machine of BENCHMARKS.md, most of it building
the 1M-message workspace the export runs on): good for a before/after check, not for the record. A benchmark that fails is reported as failed with its exit code and
the others still run; the exit code is 1 when any failed or exited non-zero
(some exit 1 when a target is missed; their figures are still reported).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import REPO, RESULTS_DIR, code_version, machine

Row = tuple[str, Any, str, bool | None]  # figure, value, target ("" when none), met (None: no target)


@dataclass(frozen=True)
class Bench:
    name: str
    args: list[str]
    quick_args: list[str]
    results: str  # glob under bench/results for the file the run writes
    figures: Callable[[dict[str, Any]], list[Row]]
    script: str = ""  # bench/<script>.py; the name when empty (one script can run as two benchmarks)


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def _ingest(d: dict[str, Any]) -> list[Row]:
    ratio = _get(d, "summary", "ratio", "rps")
    return [
        ("ingest: acknowledged/s, appliance / minimal durable receiver", ratio, ">= 0.8",
         ratio is not None and ratio >= 0.8),
        ("ingest: appliance acknowledged/s (median)", _get(d, "summary", "appliance", "rps_median"), "", None),
        ("ingest: p99 ms, appliance vs receiver",
         f"{_get(d, 'summary', 'appliance', 'p99_ms_median')} vs {_get(d, 'summary', 'baseline', 'p99_ms_median')}",
         "", None),
    ]


def _reply(d: dict[str, Any]) -> list[Row]:
    ratio = _get(d, "summary", "ratio", "replies_per_s")
    p99 = _get(d, "summary", "appliance", "p99_ms_median")
    return [
        ("reply: replies/s, appliance / pywa", ratio, ">= 1.5", ratio is not None and ratio >= 1.5),
        ("reply: every event answered exactly once", _get(d, "summary", "targets", "every_event_answered"), "true",
         _get(d, "summary", "targets", "every_event_answered") is True),
        ("reply: inbound-to-reply p99 ms at 32 senders", p99, "< 100", p99 is not None and p99 < 100),
        ("reply: server CPU-ms per reply, appliance vs pywa",
         (f"{_get(d, 'summary', 'appliance', 'server_cpu_ms_per_reply_median')} vs "
          f"{_get(d, 'summary', 'pywa', 'server_cpu_ms_per_reply_median')}"), "", None),
    ]


def _footprint(d: dict[str, Any]) -> list[Row]:
    ready = _get(d, "summary", "restart_ready_s_median")
    rss = _get(d, "summary", "idle_rss_mb_median")
    return [
        ("footprint: restart-to-ready s (median)", ready, "<= 1.0", ready is not None and ready <= 1.0),
        ("footprint: CPU-s to get ready (median)", _get(d, "summary", "restart_cpu_to_ready_s_median"), "", None),
        ("footprint: idle RSS MB (median)", rss, "<= 100", rss is not None and rss <= 100),
        ("footprint: AI SDK modules in the server", _get(d, "summary", "ai_sdk_modules_in_server"), "[]",
         _get(d, "summary", "ai_sdk_modules_in_server") == []),
    ]


def _broadcast(d: dict[str, Any]) -> list[Row]:
    r = d.get("result") or {}
    ratio, busiest, limit = r.get("achieved_ratio"), r.get("busiest_second"), r.get("rate_limit")
    clean = r.get("duplicates") == 0 and r.get("missed") == 0
    return [
        (f"broadcast: {r.get('recipients')} recipients, achieved / limit", ratio, ">= 0.95",
         ratio is not None and ratio >= 0.95),
        ("broadcast: busiest one-second window / limit", f"{busiest} / {limit}", "<= limit",
         busiest is not None and limit is not None and busiest <= limit),
        ("broadcast: duplicates, missed", f"{r.get('duplicates')}, {r.get('missed')}", "0, 0", clean),
    ]


def _router(d: dict[str, Any]) -> list[Row]:
    run = _get(d, "runs", -1) or {}
    ack = _get(run, "ack", "p99_ms")
    rate = run.get("achieved_events_per_s")
    return [
        (f"router: events/s achieved ({_get(d, 'args', 'rate')} offered, {_get(d, 'args', 'batch')} per POST, "
         f"{run.get('dead')} tenants down)", rate,
         ">= 1000", rate is not None and rate >= 0.98 * float(_get(d, "args", "rate") or 0)),
        ("router: ack p99 ms", ack, "< 50", ack is not None and ack < 50),
        ("router: lost, duplicated", f"{run.get('lost')}, {run.get('duplicates')}", "0, 0",
         run.get("lost") == 0 and run.get("duplicates") == 0),
        ("router: healthy tenants' delivery p99 ms", _get(run, "delivery_healthy", "p99_ms"), "", None),
    ]


def _export(d: dict[str, Any]) -> list[Row]:
    rounds = d.get("export_under_load") or []
    ratios = [r.get("rps_during_over_reference") for r in rounds]
    return [
        (f"export: {_get(d, 'build', 'messages')} messages, idle export wall / CPU s",
         f"{_get(d, 'export_idle', 'seconds')} / {_get(d, 'export_idle', 'cpu_s')}", "", None),
        ("export: under ingest, wall s per round", ", ".join(str(r.get("seconds")) for r in rounds), "", None),
        ("export: ingest during / around the export, per round", ", ".join(str(x) for x in ratios), "", None),
        ("export: import of the file, s", _get(d, "import", "seconds"), "", None),
    ]


def _web(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for page in d.get("pages") or []:
        if page.get("target"):
            p95 = page.get("server_p95_ms")
            rows.append((f"web: {page['name']} server p95 ms (CPU ms)", f"{p95} ({page.get('server_cpu_ms_per_request')})",
                         "< 50", p95 is not None and p95 < 50))
    last = _get(d, "fanout", "webhook_to_last_max_ms")
    rows.append(("web: SSE fan-out to 50 sessions, webhook -> last, max ms", last, "< 200",
                 last is not None and last < 200))
    return rows


def _retrieval(d: dict[str, Any]) -> list[Row]:
    p95 = _get(d, "gateway_read_ms", "p95")
    return [("AI: retrieval over 10,000 passages p95 ms", p95, "< 20", p95 is not None and p95 < 20)]


def _pdf(d: dict[str, Any]) -> list[Row]:
    s = d.get("median_s")
    return [("AI: 200-page PDF into the knowledge base, s", s, "< 10", s is not None and s < 10)]


def _canvas(d: dict[str, Any]) -> list[Row]:
    big = _get(d, "results", "200") or {}
    return [("builder: one-step redraw at 200 steps, ms", big.get("redraw_ms"), "", None),
            ("builder: open a 200-step flow, ms", big.get("open_ms"), "", None)]


def _backup(d: dict[str, Any]) -> list[Row]:
    return [("backup: seconds, backup / passphrase export", d.get("backup_over_export"), "", None),
            ("backup: verify s, restore s", f"{d.get('verify_s')}, {d.get('restore_s')}", "", None)]


def _billing(d: dict[str, Any]) -> list[Row]:
    return [("billing: Stripe event processed, median ms", _get(d, "median_ms", "processed"), "", None)]


BENCHES = [
    Bench("ingest", ["--rounds", "5", "--duration", "10"], ["--rounds", "3", "--duration", "5"], "ingest-2*.json", _ingest),
    Bench("reply", ["--rounds", "5"], ["--rounds", "3", "--events", "1500"], "reply-2*.json", _reply),
    Bench("footprint", ["--restarts", "7"], ["--restarts", "3", "--deliveries", "1000"], "footprint-2*.json",
          _footprint),
    Bench("broadcast", ["--recipients", "100000", "--rate", "1000"], ["--recipients", "20000", "--rate", "1000"],
          "broadcast-2*.json", _broadcast),
    # Meta batches deliveries under load (up to 1,000 updates per POST): 10 per POST is the
    # target's workload; one per POST, the worst case, is reported beside it.
    Bench("router", ["--rate", "1000", "--seconds", "20", "--batch", "10"],
          ["--rate", "1000", "--seconds", "10", "--batch", "10"], "router-2*.json", _router),
    Bench("router_single", ["--rate", "1000", "--seconds", "20", "--batch", "1"],
          ["--rate", "1000", "--seconds", "10", "--batch", "1"], "router-2*.json", _router, script="router"),
    Bench("web", [], ["--contacts", "5000", "--messages", "100000", "--requests", "50"], "web-2*.json", _web),
    Bench("ai_retrieval", [], ["--queries", "300"], "ai-retrieval-*.json", _retrieval),
    Bench("ai_pdf_ingest", ["--rounds", "3"], ["--rounds", "2"], "ai-pdf-ingest-*.json", _pdf),
    Bench("flow_canvas", ["--rounds", "3"], ["--rounds", "2"], "flow_canvas-*.json", _canvas),
    Bench("backup", ["--rounds", "3"], ["--messages", "50000", "--rounds", "2"], "backup-*.json", _backup),
    Bench("billing", [], ["--events", "100"], "billing-*.json", _billing),
    Bench("export", ["--slice", "5", "--rounds", "2", "--between", "2", "--per-slice", "1500", "--max-during", "40"],
          ["--messages", "200000", "--contacts", "5000", "--slice", "5", "--rounds", "1", "--between", "2",
           "--per-slice", "1500", "--max-during", "20"], "export-2*.json", _export),
]


def _newest(pattern: str, since: float) -> Path | None:
    files = [Path(f) for f in glob.glob(str(RESULTS_DIR / pattern)) if os.path.getmtime(f) >= since]
    return max(files, key=os.path.getmtime) if files else None


def run(bench: Bench, quick: bool, log_dir: Path) -> dict[str, Any]:
    """Run one benchmark to completion; its figures, or why there are none."""
    command = [sys.executable, f"bench/{bench.script or bench.name}.py", *(bench.quick_args if quick else bench.args)]
    shown = " ".join([".venv/bin/python", *command[1:]])
    load = round(os.getloadavg()[0], 2)
    print(f"\n== {bench.name}: {shown}  (load average {load})", flush=True)
    started = time.time()
    with (log_dir / f"{bench.name}.log").open("w") as log:
        code = subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    seconds = round(time.time() - started, 1)
    entry: dict[str, Any] = {"name": bench.name, "command": shown, "seconds": seconds, "exit_code": code,
                             "load_average_before": load, "rows": []}
    result = _newest(bench.results, started)
    if result is None:
        entry["error"] = f"exit code {code}, no result file; see {log_dir.name}/{bench.name}.log"
        print(f"   failed: {entry['error']}", flush=True)
        return entry
    # Some benchmarks exit 1 when a target is missed, with their result written: report it.
    entry["result_file"] = str(result.relative_to(REPO))
    entry["rows"] = bench.figures(json.loads(result.read_text()))
    for figure, value, target, met in entry["rows"]:
        print(f"   {figure}: {value}" + (f" (target {target}: {'met' if met else 'MISSED'})" if target else ""))
    return entry


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value).replace("|", "/")


def table(entries: list[dict[str, Any]]) -> str:
    lines = ["| figure | value | target | met | command |", "|---|---|---|---|---|"]
    for e in entries:
        if e.get("error"):
            lines.append(f"| {e['name']} | failed: {e['error']} | | | `{e['command']}` |")
            continue
        for figure, value, target, met in e["rows"]:
            verdict = "" if met is None else ("met" if met else "**missed**")
            lines.append(f"| {figure} | {_shown(value)} | {target} | {verdict} | `{e['command']}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a before/after check")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names")
    args = parser.parse_args()
    names = {b.name for b in BENCHES}
    only, skip = {n for n in args.only.split(",") if n}, {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - names
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    chosen = [b for b in BENCHES if (not only or b.name in only) and b.name not in skip]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS_DIR / f"all-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info = {"machine": machine(), "code": code_version(), "quick": args.quick}
    print(f"machine: {info['machine']}\ncode: {info['code']}", flush=True)
    entries = [run(b, args.quick, log_dir) for b in chosen]
    report = {**info, "minutes": round((time.time() - started) / 60, 1), "benchmarks": entries}
    (RESULTS_DIR / f"all-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS_DIR / f"all-{stamp}.md").write_text(table(entries) + "\n")
    print(f"\n{table(entries)}\n\n{report['minutes']} min; logs in {log_dir}")
    sys.exit(1 if any(e.get("error") or e["exit_code"] for e in entries) else 0)


if __name__ == "__main__":
    main()
