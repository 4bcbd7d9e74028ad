"""Footprint of one appliance: restart-to-ready, idle memory, import cost, AI SDKs not loaded.

    .venv/bin/python bench/footprint.py [--restarts 7] [--idle 3] [--deliveries 2000]

1. Cold start: ``aat-appliance serve`` on a fresh data directory (keys generated, migrations
   applied), timed from process start to the first ``GET /readyz`` 200. ``serve`` answers it
   (and takes webhooks) with its front door while the full app is built (appliance/web/front.py).
2. The workspace gets data: ``--deliveries`` signed webhook deliveries, processed into contacts,
   conversations and messages; then the server is stopped with SIGTERM.
3. ``--restarts`` warm restarts on that data directory: process start to ``/readyz`` 200; right
   then ``GET /metrics``, which only the full app answers (seconds from process start until it
   opens); then ``--idle`` seconds of idleness, then the resident memory of the process and its children
   (RSS, and USS: the memory only this process holds), and the CPU seconds used by then (what
   was loaded after ready, aiohttp for the sends, shows here and not in the CPU to ready).
   Medians are reported. Targets: restart-to-ready <= 1.0 s, idle RSS <= 100 MB.
4. Imports: ``python -X importtime -c "import appliance.app"`` in a fresh interpreter (total and the
   heaviest packages), and one server run under ``-X importtime`` that logs every module the
   serving process ever imports: ``anthropic`` and ``openai`` must not be among them (the AI SDKs
   are imported lazily, when an AI feature first runs).

The result is written to ``bench/results/footprint-<time>.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (  # noqa: E402
    REPO,
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    Server,
    appliance_env,
    code_version,
    free_port,
    http_get,
    machine,
    median,
    require_module,
    wait_ready,
)
from events import deliveries, sign  # noqa: E402

APP_SECRET = "bench-app-secret-0123456789abcdef"
AI_SDKS = ("anthropic", "openai")
TARGET_READY_S = 1.0
TARGET_RSS_MB = 100.0


def _memory(pid: int) -> dict[str, float]:
    import psutil

    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs)
    uss = sum(p.memory_full_info().uss for p in procs)
    return {"rss_mb": round(rss / 1e6, 1), "rss_mib": round(rss / 2**20, 1), "uss_mb": round(uss / 1e6, 1),
            "processes": len(procs), "threads": sum(p.num_threads() for p in procs)}


def _populate(port: int, count: int) -> float:
    """POST ``count`` signed deliveries on one keep-alive connection; wait until processed."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for body in deliveries(count, "fp"):
            conn.request("POST", "/webhooks/meta", body=body, headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(body, APP_SECRET.encode()),
            })
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise BenchError(f"a webhook POST answered {response.status}")
    finally:
        conn.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, text = http_get(port, "/metrics")
        match = re.search(rb"^aat_journal_pending (\S+)$", text, re.MULTILINE)
        if status == 200 and match and float(match.group(1)) == 0:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise BenchError("the appliance did not process the deliveries within 120 s")


def _serve_argv(port: int, data_dir: Path, importtime: bool = False) -> list[str]:
    if importtime:
        return [sys.executable, "-X", "importtime", "-m", "appliance.cli", "serve",
                "--port", str(port), "--data-dir", str(data_dir)]
    return [str(VENV_BIN / "aat-appliance"), "serve", "--port", str(port), "--data-dir", str(data_dir)]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far: unlike wall time, barely moved
    by other jobs on a shared machine."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _start(name: str, argv: list[str], env: dict[str, str], port: int, work: Path,
           cwd: Path | None = None) -> tuple[Server, float, float]:
    """The running server (run in ``cwd``, default ``work``; its log in ``work``), seconds from
    process start to ready, and CPU seconds it used to get there."""
    server = Server(name, argv, env, port, cwd or work, work / f"{name}.log").start()
    try:
        ready = wait_ready(server)
        cpu = _cpu_s(server.proc.pid)
    except BaseException:
        server.stop()
        raise
    return server, ready, cpu


def _after_ready(server: Server, body: bytes | None = None) -> dict[str, float]:
    """Right after ready: with ``body``, seconds until that signed delivery is acknowledged (the
    front door takes it while the full app is built); then seconds from process start until the
    full app answers (the door holds ``GET /metrics`` until then: appliance/web/front.py)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    timings: dict[str, float] = {}
    try:
        if body is not None:
            sent = time.perf_counter()
            conn.request("POST", "/webhooks/meta", body=body, headers={
                "Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET.encode())})
            response = conn.getresponse()
            response.read()
            timings["ack_at_ready_s"] = round(time.perf_counter() - sent, 4)
            if response.status != 200:
                raise BenchError(f"a webhook POST right after ready answered {response.status}")
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise BenchError(f"GET /metrics after ready answered {response.status}")
        timings["app_open_s"] = round(time.perf_counter() - server.started, 3)
        return timings
    finally:
        conn.close()


def _stop(server: Server) -> float:
    started = time.perf_counter()
    code = server.stop()
    if code not in (0, -15):  # uvicorn re-raises the SIGTERM it handled: -15 is a clean exit
        raise BenchError(f"{server.name} exited with code {code}; see {server.log_path}\n{server.log_tail()}")
    return time.perf_counter() - started


def _importtime(lines: list[str]) -> list[tuple[str, int, int, int]]:
    """(module, self_us, cumulative_us, depth) from ``-X importtime`` output (depth 0: imported
    by the script itself; a row's cumulative time includes the rows nested under it)."""
    rows = []
    for line in lines:
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            depth = (len(match.group(3)) - 1) // 2
            rows.append((match.group(4), int(match.group(1)), int(match.group(2)), depth))
    return rows


def import_cost(env: dict[str, str], runs: int = 5) -> dict[str, Any]:
    """Wall time of a bare interpreter and of ``import appliance.app``; the heaviest imports."""
    def wall(code: str, *flags: str) -> tuple[float, str]:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, *flags, "-c", code], env=env, capture_output=True, text=True,
                              check=True)
        return time.perf_counter() - started, proc.stderr

    bare = median([wall("pass")[0] for _ in range(runs)])
    app = median([wall("import appliance.app")[0] for _ in range(runs)])
    _, stderr = wall("import appliance.app", "-X", "importtime")
    rows = _importtime(stderr.splitlines())
    # Own time of every module, summed per top-level package: where import time goes.
    by_package: dict[str, int] = {}
    for module, self_us, _, _ in rows:
        package = module.split(".")[0]
        by_package[package] = by_package.get(package, 0) + self_us
    total_us = sum(cumulative for _, _, cumulative, depth in rows if depth == 0)
    check = subprocess.run(
        [sys.executable, "-c", "import sys, json, appliance.app, appliance.cli; "
         f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {AI_SDKS!r})))"],
        env=env, capture_output=True, text=True, check=True)
    return {
        "python_bare_s": round(bare, 3),
        "python_import_appliance_app_s": round(app, 3),
        "importtime_total_ms": round(total_us / 1000, 1),
        "importtime_appliance_app_ms": round(
            next((c for m, _, c, d in rows if m == "appliance.app" and d == 0), 0) / 1000, 1),
        "modules_imported": len(rows),
        "self_ms_by_package": {k: round(v / 1000, 1) for k, v in
                               sorted(by_package.items(), key=lambda kv: -kv[1])[:12]},
        "ai_sdk_modules_after_import": json.loads(check.stdout),
    }


def _median(values: list[float], digits: int = 3) -> float:
    return round(median(values), digits)


def startup_phases(env: dict[str, str], data_dir: Path, port: int, runs: int = 5) -> dict[str, float]:
    """Median seconds per step of ``serve`` (bench/_startup_phases.py), on the same data directory."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("_startup_phases.py")), str(data_dir),
                               str(port)], env=env, capture_output=True, text=True, timeout=120)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise BenchError(f"bench/_startup_phases.py failed: {proc.stderr.strip()[-2000:]}")
        for key, value in json.loads(lines[-1]).items():
            samples.setdefault(key, []).append(value)
    return {key: round(median(values), 3) for key, values in samples.items()}


def first_send(env: dict[str, str], runs: int = 5) -> dict[str, float]:
    """Median seconds of the first and second send right at ready (bench/_first_send.py)."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("_first_send.py"))], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise BenchError(f"bench/_first_send.py failed: {proc.stderr.strip()[-2000:]}")
        for key, value in json.loads(lines[-1]).items():
            samples.setdefault(key, []).append(value)
    return {key: round(median(values), 4) for key, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description="Restart-to-ready, idle RSS and import cost of the appliance.")
    parser.add_argument("--restarts", type=int, default=7, help="warm restarts (default 7)")
    parser.add_argument("--idle", type=float, default=3.0, help="idle seconds before reading memory (default 3)")
    parser.add_argument("--deliveries", type=int, default=2000,
                        help="deliveries stored before restarting (default 2000)")
    parser.add_argument("--work-dir", type=Path, default=None, help="default bench/results/footprint-<time>/")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="do not compile the project's modules first and run with PYTHONDONTWRITEBYTECODE=1, "
                             "as this sandbox does: a module without an up-to-date .pyc is compiled at every start")
    args = parser.parse_args()

    require_module("psutil", ".venv/bin/pip install -e '.[bench]'")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = (args.work_dir or RESULTS_DIR / f"footprint-{stamp}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    env = appliance_env(master_key=os.urandom(32), app_secret=APP_SECRET)
    if args.no_bytecode_cache:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        # As installed (pip compiles every module at install time, the Docker image included):
        # compile the project's own modules once, before anything is timed.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "appliance"),
                        str(REPO / "control_plane"), str(REPO / "migrations")], env=env, check=True)
    info = machine()
    info["bytecode_cache"] = not args.no_bytecode_cache
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['kernel']}, Python {info['python']}, "
          f"load average {info['loadavg_1m_at_start']}, bytecode cache {'on' if info['bytecode_cache'] else 'OFF'}",
          flush=True)

    code = code_version()
    print(f"code: commit {code['commit']}, {code['modified_tracked_files']} tracked files modified", flush=True)
    port = free_port()
    server, cold, cold_cpu = _start("cold", _serve_argv(port, data_dir), env, port, work)
    print(f"cold start (fresh data directory, migrations): {cold:.3f} s to /readyz 200 "
          f"({cold_cpu:.3f} CPU-s)", flush=True)
    try:
        populate_s = _populate(port, args.deliveries)
        loaded = _memory(server.proc.pid)
    finally:
        cold_stop = _stop(server)
    print(f"stored {args.deliveries} deliveries in {populate_s:.1f} s; RSS after that load {loaded['rss_mb']} MB; "
          f"SIGTERM to exit {cold_stop:.2f} s", flush=True)

    restarts = []
    for n in range(1, args.restarts + 1):
        server, ready, cpu = _start(f"restart-{n}", _serve_argv(port, data_dir), env, port, work)
        try:
            opened = _after_ready(server)  # no delivery: the idle memory stays that of a restart alone
            time.sleep(args.idle)
            memory = _memory(server.proc.pid)
            cpu_idle = _cpu_s(server.proc.pid)
        finally:
            stop = _stop(server)
        restarts.append({"ready_s": round(ready, 3), "cpu_to_ready_s": round(cpu, 3),
                         "cpu_after_idle_s": round(cpu_idle, 3), "stop_s": round(stop, 3),
                         "loadavg_1m": round(os.getloadavg()[0], 2), **opened, **memory})
        print(f"restart {n}: ready in {ready:.3f} s ({cpu:.3f} CPU-s; {cpu_idle:.3f} by the end of idle), full app "
              f"open at {opened['app_open_s']:.3f} s, idle RSS {memory['rss_mb']} MB "
              f"(USS {memory['uss_mb']} MB, "
              f"{memory['threads']} threads), stop {stop:.2f} s", flush=True)

    # One more run under -X importtime: every module the serving process ever imports is logged.
    server, _, _ = _start("importtime", _serve_argv(port, data_dir, importtime=True), env, port, work)
    try:
        time.sleep(args.idle)
        http_get(port, "/metrics")
    finally:
        _stop(server)
    served_modules = [m for m, _, _, _ in _importtime(server.log_path.read_text(errors="replace").splitlines())]
    ai_loaded = sorted({m for m in served_modules if m.split(".")[0] in AI_SDKS})
    imports = import_cost(env)
    phases = startup_phases(env, data_dir, port)
    sends = first_send(env)

    summary = {
        "cold_start_ready_s": round(cold, 3),
        "cold_start_cpu_s": round(cold_cpu, 3),
        "restart_cpu_to_ready_s_median": _median([r["cpu_to_ready_s"] for r in restarts]),
        "restart_cpu_after_idle_s_median": _median([r["cpu_after_idle_s"] for r in restarts]),
        "restart_ready_s_median": _median([r["ready_s"] for r in restarts]),
        "restart_ready_s_min": min(r["ready_s"] for r in restarts),
        "restart_ready_s_max": max(r["ready_s"] for r in restarts),
        "restart_app_open_s_median": _median([r["app_open_s"] for r in restarts]),
        "idle_rss_mb_median": _median([r["rss_mb"] for r in restarts], 1),
        "idle_rss_mib_median": _median([r["rss_mib"] for r in restarts], 1),
        "idle_uss_mb_median": _median([r["uss_mb"] for r in restarts], 1),
        "rss_mb_after_load": loaded["rss_mb"],
        "modules_imported_by_server": len(served_modules),
        "ai_sdk_modules_in_server": ai_loaded,
        "targets": {"restart_ready_s": TARGET_READY_S, "idle_rss_mb": TARGET_RSS_MB},
    }
    summary["meets_ready_target"] = summary["restart_ready_s_median"] <= TARGET_READY_S
    summary["meets_rss_target"] = summary["idle_rss_mb_median"] <= TARGET_RSS_MB
    result = {
        "benchmark": "footprint",
        "time": stamp,
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": info,
        "code": code_version(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "summary": summary,
        "imports": imports,
        "startup_phases_s": phases,
        "first_send_at_ready_s": sends,
        "restarts": restarts,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"footprint-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))

    print()
    print(f"restart-to-ready: median {summary['restart_ready_s_median']:.3f} s "
          f"(min {summary['restart_ready_s_min']:.3f}, "
          f"max {summary['restart_ready_s_max']:.3f}; target <= {TARGET_READY_S} s: "
          f"{'met' if summary['meets_ready_target'] else 'MISSED'}); CPU used to get ready: median "
          f"{summary['restart_cpu_to_ready_s_median']:.3f} s ({summary['restart_cpu_after_idle_s_median']:.3f} s by the "
          f"end of {args.idle:g} s idle); cold first start {cold:.3f} s")
    print(f"the full app open at {summary['restart_app_open_s_median']:.3f} s from process start (median; the front "
          "door answers /readyz and webhooks before, other requests wait for it; bench/restart_compare.py times a "
          "delivery at ready)")
    print(f"idle RSS: median {summary['idle_rss_mb_median']} MB = {summary['idle_rss_mib_median']} MiB "
          f"(USS {summary['idle_uss_mb_median']} MB; target <= {TARGET_RSS_MB:.0f} MB: "
          f"{'met' if summary['meets_rss_target'] else 'MISSED'}); after {args.deliveries} deliveries "
          f"{loaded['rss_mb']} MB")
    print(f"imports: bare interpreter {imports['python_bare_s']:.3f} s, `import appliance.app` "
          f"{imports['python_import_appliance_app_s']:.3f} s wall ({imports['modules_imported']} modules); "
          "own import time by package: "
          + ", ".join(f"{k} {v} ms" for k, v in list(imports["self_ms_by_package"].items())[:6]))
    print("where a restart goes (medians, s): " + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()))
    print(f"a send issued at the instant of ready: first {sends['first_send_s']:.3f} s, second "
          f"{sends['second_send_s']:.3f} s (medians of 5; aiohttp loads after ready, a later send does not wait)")
    print(f"AI SDKs imported by the server: {ai_loaded or 'none'}; after `import appliance.app`: "
          f"{imports['ai_sdk_modules_after_import'] or 'none'}")
    print(f"result: {out}")
    failed = ai_loaded or imports["ai_sdk_modules_after_import"]
    if failed:
        print(f"FAILED: the serving process imports {sorted(set(ai_loaded) | set(failed))}; import the AI SDKs lazily",
              file=sys.stderr)
        print(f"work directory kept: {work}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
