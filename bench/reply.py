"""Inbound message -> bot reply: the appliance's flow engine against pywa's echo bot, side by side.

    .venv/bin/python bench/reply.py [--rounds 5] [--events 3000] [--warmup 300] [--concurrency 32]
                                    [--pace reply|ack] [--commit REV] [--py-spy appliance|pywa]
                                    [--sides appliance pywa]

Two sides, each answering WhatsApp text messages with ``Hi <first name>, you said something!``
through the same local Graph API stand-in (``bench/graph_sink.py``):

- **appliance**: ``aat-appliance serve`` on a fresh data directory (``AAT_MASTER_KEY``,
  ``AAT_META_APP_SECRET``, ``AAT_GRAPH_API_BASE`` = the sink, ``AAT_LOG_LEVEL=warning``,
  ``AAT_RATE_LIMIT_WHATSAPP=1000``), an API token made with ``aat-appliance tokens create``
  before it starts, two WhatsApp numbers connected with ``POST /api/v1/channels`` (the deliveries
  alternate between them: one number may send at most 1,000 a second, see ``reply_load.py``), and a flow with a
  ``default`` trigger published with ``POST /api/v1/flows`` + ``/publish``. Every delivery is
  journaled (committed) before its 200; the journal processor applies it (contact,
  conversation, message, flow run) and queues the reply in the outbox; the sender sends it and
  records the result. All of it in the SQLCipher database.
- **pywa**: ``bench/pywa_echo.py``, pywa's echo bot on FastAPI + uvicorn (see its docstring):
  verify the signature, 200, reply from a background task through pywa's own client. Stores
  nothing.

Load: for every round, ``--warmup`` + ``--events`` WhatsApp text deliveries are built and signed
once (one distinct contact each: a ``wa_id``, a BSUID, a profile name; a unique ``wamid``), and
both sides get exactly those bytes. The load generator is this process: ``--concurrency`` senders
on keep-alive connections, each posting its next pre-signed delivery and, with ``--pace reply``
(the default), waiting until the sink has received the reply to it before posting the next: 32
conversations in flight at all times, so that latency is measured at a fixed concurrency rather
than as a backlog that grows with the run's length. ``--pace ack`` instead posts the next delivery
as soon as the 200 arrives (what wrk does): throughput at saturation, with latency that includes
the backlog. The sink runs in this process's event loop, so the two times of an event (delivery
sent, reply arrived) are read from one clock (``time.monotonic``, ``CLOCK_MONOTONIC``) in one
process. wrk is not used: it can only close its loop on the 200, and cannot tell when a reply
came.

Each side runs on a fresh server (and, for the appliance, a fresh data directory) every round: a
warm-up of ``--warmup`` events (unmeasured), then the measured ``--events``, then ``--grace``
seconds in which a duplicate reply would still be seen. Rounds alternate the order (A B, B A, ...).
Per run: replies per second (replies received / time from the first delivery sent to the last
reply received), every event answered exactly once with the expected text (matched by recipient),
inbound-to-reply latency p50/p90/p99/max, acknowledgement latency, server CPU per reply, RSS.
After each appliance run the database is opened with its key and counted (every inbound message
and every reply stored, nothing left in the outbox or the journal), and the inbound-to-reply time
is split into stages from the database's own timestamps (see ``_breakdown``).

The summary gives per-side medians, the ratio appliance/pywa and the targets: replies/s >= 1.5x
pywa's, every event answered, p99 < 100 ms. The result is written to
``bench/results/reply-<time>.json``. ``--py-spy SIDE`` adds one unmeasured run of that side under
``py-spy record --gil`` and prints where its GIL time goes (raw stacks next to the result).
``--commit REV`` runs the appliance from a ``git archive`` of that commit instead of the working
tree (for a machine where others edit the tree while the benchmark runs).

The pieces: ``reply_load.py`` (the deliveries and the senders), ``reply_appliance.py`` and
``reply_pywa.py`` (starting, setting up and checking each side), ``reply_report.py`` (scoring,
medians, ratios, targets). This module runs the rounds and writes the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    Server,
    code_version,
    machine,
    require_module,
)
from graph_sink import GraphSink
from reply_appliance import (
    RATE_LIMIT_WHATSAPP,
    check_appliance,
    snapshot,
    start_appliance,
)
from reply_load import ACCESS_TOKEN, Driver, Event, build_events
from reply_pywa import start_pywa
from reply_report import SIDES, print_summary, score, summarize_runs


@dataclass
class Side:
    name: str
    server: Server
    data_dir: Path | None = None


def start_side(name: str, work: Path, tag: str, sink: GraphSink, master_key: bytes,
               code: Path | None = None) -> Side:
    """Start one side on a fresh server (blocking: call through ``asyncio.to_thread``)."""
    if name == "appliance":
        server, data_dir, _ = start_appliance(work, tag, sink, master_key, code)
        return Side(name, server, data_dir)
    return Side(name, start_pywa(work, tag, sink))


def stop_side(side: Side) -> None:
    code = side.server.stop()
    # uvicorn re-raises the SIGTERM it handled after a graceful shutdown: -15 is a clean exit.
    if code not in (0, -15):
        raise BenchError(f"{side.name} exited with code {code}; see {side.server.log_path}\n{side.server.log_tail()}")


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the whole process, and of its main thread (the event loop:
    on Linux the main thread's id is the process id); the rest is the appliance's writer and
    reader threads and huey's worker."""
    import psutil

    proc = psutil.Process(pid)
    times = proc.cpu_times()
    main = sum(t.user_time + t.system_time for t in proc.threads() if t.id == pid)
    return times.user + times.system, main


def _rss_mib(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


# --- one run ----------------------------------------------------------------------------------


async def run_side(name: str, tag: str, warmup: list[Event], events: list[Event], sink: GraphSink,
                   args: argparse.Namespace, work: Path, master_key: bytes, spy: Path | None = None) -> dict[str, Any]:
    side = await asyncio.to_thread(start_side, name, work, tag, sink, master_key, args.code)
    pid = side.server.proc.pid
    try:
        driver = Driver(sink, side.server.port, args.concurrency, args.pace, args.reply_timeout)
        if warmup:
            sink.reset()
            warm = await driver.run(warmup)
            await driver.wait_answered(warm, args.reply_timeout)
            driver.forget()
            await asyncio.sleep(args.grace)
        sink.reset()
        spy_proc = None
        if spy is not None:
            spy_proc = await asyncio.create_subprocess_exec(
                args.py_spy_bin, "record", "--pid", str(pid), "--gil", "--threads", "--nonblocking",
                "--rate", "200", "--format", "raw", "--output", str(spy),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            await asyncio.sleep(1.0)  # py-spy attaches
        cpu_before, self_before = _cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        load = await driver.run(events)
        await driver.wait_answered(load, args.reply_timeout)
        wall = time.monotonic() - started
        cpu_after, self_after = _cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
        if spy_proc is not None:
            spy_proc.send_signal(2)  # SIGINT: py-spy writes what it has
            _, err = await spy_proc.communicate()
            if spy_proc.returncode not in (0, -2) and not spy.exists():
                raise BenchError(f"py-spy failed: {err.decode(errors='replace').strip()}")
        await asyncio.sleep(args.grace)  # a duplicate reply would arrive now
        arrivals: dict[int, float] = {}
        result = score(driver, load, arrivals)
        driver.forget()
        rss = _rss_mib(pid)
    finally:
        await asyncio.to_thread(side.server.stop)
    stop_side(side)
    server_cpu = cpu_after[0] - cpu_before[0]
    loop_cpu = cpu_after[1] - cpu_before[1]
    driver_cpu = (self_after.ru_utime - self_before.ru_utime) + (self_after.ru_stime - self_before.ru_stime)
    result.update({
        "side": name, "round": tag, "server_cpu_s": round(server_cpu, 3),
        "server_cpu_ms_per_reply": round(1000 * server_cpu / max(1, result["answered"]), 3),
        "server_cpu_ms_per_reply_event_loop_thread": round(1000 * loop_cpu / max(1, result["answered"]), 3),
        "server_cpu_ms_per_reply_other_threads": round(1000 * (server_cpu - loop_cpu) / max(1, result["answered"]), 3),
        "server_cpu_share_of_one_core": round(server_cpu / wall, 3),
        "driver_cpu_share_of_one_core": round(driver_cpu / wall, 3),
        "rss_mib_at_end": rss, "loadavg_1m": round(os.getloadavg()[0], 2),
    })
    if name == "appliance":
        assert side.data_dir is not None
        check = await asyncio.to_thread(check_appliance, side.data_dir, master_key,
                                        len(warmup) + len(events), load, arrivals)
        result["storage"] = check
        if not args.keep:
            shutil.rmtree(side.data_dir, ignore_errors=True)
    lat = result["latency_ms"]
    extra = ""
    if "storage" in result:
        b = result["storage"]["breakdown_ms"]
        extra = ("  stages p50 " + " / ".join(f"{k} {v['p50']:.1f}" for k, v in b.items())
                 + f"  storage {'ok' if result['storage']['ok'] else 'MISMATCH'}")
    print(f"{tag:>7} {name:<9} {result['replies_per_s']:>7.1f} replies/s  p50 {lat['p50']:7.1f} ms  "
          f"p99 {lat['p99']:7.1f} ms  answered {result['answered']}/{result['events']}"
          f"{'' if result['exactly_once'] else ' NOT EXACTLY ONCE'}  server CPU {result['server_cpu_ms_per_reply']:.2f} "
          f"ms/reply (loop {result['server_cpu_ms_per_reply_event_loop_thread']:.2f}, "
          f"{result['server_cpu_share_of_one_core']:.0%} of a core)  driver "
          f"{result['driver_cpu_share_of_one_core']:.0%}{extra}", flush=True)
    return result



async def main_async(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = (args.work_dir or RESULTS_DIR / f"reply-{stamp}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    master_key = os.urandom(32)
    code = code_version()
    args.code = None
    if args.commit:
        args.code, code = snapshot(args.commit, work)
    sink = await GraphSink(token=ACCESS_TOKEN).start()

    info = machine(work)
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['kernel']}, Python {info['python']}, "
          f"load average {info['loadavg_1m_at_start']}, 4 KiB fdatasync {info['fsync_ms_median']} ms", flush=True)
    if args.code is not None:
        print(f"code: the appliance runs from a snapshot of commit {code['commit']} ({args.code})", flush=True)
    else:
        print(f"code: commit {code['commit']}, {code['modified_tracked_files']} tracked files modified", flush=True)
    print(f"load: {args.concurrency} senders, pace '{args.pace}', {args.rounds} rounds x {args.events} events "
          f"(+{args.warmup} warm-up) per side, order rotating each round; sink {sink.base_url}; "
          f"appliance AAT_RATE_LIMIT_WHATSAPP={RATE_LIMIT_WHATSAPP}", flush=True)

    runs: list[dict[str, Any]] = []
    failure: str | None = None
    profile: dict[str, Any] | None = None
    try:
        for n in range(1, args.rounds + 1):
            now = int(time.time())
            warmup = build_events(n, args.warmup, 0, now)
            events = build_events(n, args.events, args.warmup, now)
            order = SIDES[(n - 1) % 2:] + SIDES[:(n - 1) % 2]
            for name in (side for side in order if side in args.sides):
                runs.append(await run_side(name, f"r{n}", warmup, events, sink, args, work, master_key))
        if args.py_spy:
            raw = RESULTS_DIR / f"reply-profile-{args.py_spy}-{stamp}.txt"
            now = int(time.time())
            print(f"profiling {args.py_spy} under py-spy (unmeasured: sampling slows it down) ...", flush=True)
            profiled = await run_side(args.py_spy, "profile", build_events(99, args.warmup, 0, now),
                                      build_events(99, args.events, args.warmup, now), sink, args, work, master_key,
                                      spy=raw)
            from profile_ingest import summarize

            profile = {"run": profiled, "raw_stacks": str(raw), **summarize(raw, 40)}
    except BenchError as exc:
        failure = str(exc)
    finally:
        await sink.stop()

    summary = summarize_runs(runs)
    for run in runs:
        if not run["exactly_once"]:
            failure = failure or (f"{run['side']} {run['round']}: not every event was answered exactly once "
                                  f"({ {k: run[k] for k in ('answered', 'unanswered', 'duplicate_replies', 'wrong_text')} })")
        if run.get("storage") and not run["storage"]["ok"]:
            failure = failure or f"appliance {run['round']}: the database does not hold what was sent: {run['storage']}"
    result = {
        "benchmark": "reply",
        "time": stamp,
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": info,
        "code": code,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "code"},
        "conditions": {
            "appliance_rate_limit_whatsapp": RATE_LIMIT_WHATSAPP,
            "note": "AAT_RATE_LIMIT_WHATSAPP=1000 so that Meta's per-number limit (80/s by default) is not what "
                    "is measured; the appliance's limiter holds each slot until one period (1 s + 20 ms) after "
                    "Meta's answer (appliance/outbox/ratelimit.py), so it caps sends at about 1000 per "
                    "(1.02 s + round trip) per number; the deliveries alternate between two numbers "
                    "(reply_load.PHONE_NUMBER_IDS), so that this ceiling is not what is measured either; "
                    "the sender has at most 64 sends in flight.",
        },
        "summary": summary,
        "profile": profile,
        "runs": runs,
        "failure": failure,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"reply-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))

    print()
    print_summary(summary)
    if profile is not None:
        print(f"profile of {args.py_spy} ({profile['samples']} GIL samples; raw stacks {profile['raw_stacks']}):")
        for name, share in profile["threads"].items():
            print(f"  {share:6.1%}  thread {name}")
        for name, share in list(profile["inclusive"].items())[:25]:
            print(f"  {share:6.1%}  {name}")
    print(f"result: {out}")
    if failure:
        print(f"FAILED: {failure}\nwork directory kept: {work}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Inbound message -> bot reply: appliance vs pywa's echo bot.")
    parser.add_argument("--rounds", type=int, default=5, help="measured runs per side (default 5)")
    parser.add_argument("--events", type=int, default=3000, help="measured events per run (default 3000)")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured events first, per run (default 300)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent senders (default 32)")
    parser.add_argument("--pace", choices=["reply", "ack"], default="reply",
                        help="a sender posts its next delivery once the reply arrived (default) or once the 200 did")
    parser.add_argument("--reply-timeout", type=float, default=60.0,
                        help="seconds to wait for a reply before counting it missing (default 60)")
    parser.add_argument("--grace", type=float, default=1.0,
                        help="seconds after the last reply in which duplicates are still counted (default 1)")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES),
                        help="which sides to run (default both; one side alone has no ratio)")
    parser.add_argument("--py-spy", choices=SIDES, default=None,
                        help="also run this side once under py-spy record --gil and print where the time goes")
    parser.add_argument("--py-spy-bin", default=shutil.which("py-spy") or str(VENV_BIN / "py-spy"))
    parser.add_argument("--commit", default=None, metavar="REV",
                        help="run the appliance from a snapshot of this commit (git archive) instead of the "
                             "working tree, e.g. HEAD when others are editing the tree during the run")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="data directories and logs (default bench/results/reply-<time>/, deleted after a "
                             "successful run unless --keep; keep it on a real disk, not tmpfs)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the data directories")
    args = parser.parse_args()

    require_module("psutil", ".venv/bin/pip install -e '.[bench]'")
    require_module("pywa_async", ".venv/bin/pip install -e '.[bench]'")
    require_module("fastapi", ".venv/bin/pip install -e '.[bench]'")
    if not (VENV_BIN / "aat-appliance").exists():
        raise BenchError(f"{VENV_BIN / 'aat-appliance'} is missing; install the project: "
                         ".venv/bin/pip install -e '.[bench]'")
    if args.py_spy and shutil.which(args.py_spy_bin) is None:
        raise BenchError("py-spy is not installed; install it with: .venv/bin/pip install -e '.[bench]'")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
