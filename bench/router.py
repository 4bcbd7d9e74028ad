"""Router benchmark: Meta deliveries at a fixed rate over many tenants, some of them down.

    .venv/bin/python bench/router.py [--rate 1000] [--seconds 20] [--tenants 100] [--dead 10]
                                     [--batch 1] [--connections 64] [--baseline]
    .venv/bin/python bench/router.py --client-only [--rounds 3]
    .venv/bin/python bench/router.py --profile ...   # also py-spy (--gil) on the control plane


- The control plane (``aat-control-plane serve``'s app, with uvicorn as ``serve`` runs it) is a
  separate process on a data directory seeded with ``--tenants`` active tenants, one Page each.
- The tenants are a stand-in in this process: one raw asyncio HTTP server per tenant port that
  answers 200 at once; of the ``--dead`` tenants, half have no listener (connection refused)
  and half accept and never answer (each request waits for the 10 s forward timeout).
- The load is open-loop: event ``i`` is due at ``start + i / rate`` whatever happened before
  (no coordinated omission); each POST carries ``--batch`` events of different tenants (Meta
  batches up to 1000), signed with the platform secret, on up to ``--connections`` keep-alive
  connections. Ack latency is from the event's due time to the 200.
- Afterwards: every event of a healthy tenant must have reached it (loss), none twice; every
  event of a dead tenant must be pending in the journal (``/admin/api/deliveries``); delivery
  latency (due time -> arrival at the tenant) of healthy tenants; the control plane's CPU
  seconds (user + system, from the first POST until the healthy tenants' events are in) and
  per event. ``--baseline`` runs the same load with no dead tenant first, for comparison.
  Results: ``bench/results/router-*.json``. To compare two versions of the forwarder, run this
  driver against clean exports of both commits (``git archive``), one after the other.
- The load starts ``--settle`` seconds (3) after the control plane is ready, past the first
  pass of its periodic sweep (which reads every tenant's usage once at start).
- ``--profile``: samples the control plane with ``py-spy record --gil`` (only the thread holding
  the GIL, i.e. Python CPU) while the load runs, and reports the share of samples per part of the
  work (``PARTS``: inbound HTTP stack, the webhook handler, the journal and marks on the writer
  thread, forwarding, the rest); the raw samples go to ``bench/results/``.
- Each run also reports the driver's own CPU (``driver_cpu_ms_per_event``, ``driver_core_share``:
  load generator and sinks share this process, so a saturated driver would be measuring
  itself), the control plane's share of a core and the system-time part of its CPU, and the
  load average at start and end.
- ``--probe``: where an ack's time goes inside the control plane (timing wrappers installed in
  the benchmark's control-plane process only, ``_router_services._probe``): each accept's wall,
  the event loop's lag, the writer's batches (wall, queue wait, the writer thread's CPU, jobs
  per batch, deliveries per journal job), GC collections (thread CPU, per generation), the
  event-loop callbacks over 5 ms by name (wall and the loop thread's CPU), the loop iterations
  over 20 ms less their select wait (with the writer batches' time inside them) and selects that
  returned over 20 ms late.
- The control plane runs with ``aat-control-plane serve``'s collector policy
  (``appliance.heap``: start-up heap frozen, gen-0 threshold raised); ``BENCH_HEAP=freeze``
  freezes only, ``BENCH_HEAP=none`` keeps CPython's defaults (for comparisons). Each run keeps
  its acks (``ack_ms_each``) for a p99 pooled over runs.
- ``--client-only``: the forwarding client alone, side by side in one run: 3,000 POSTs of 1 KB
  over 10 local origins with 8 in flight, through the forwarder's ``ForwardingClient``
  (aiohttp used directly) and through ``httpx.AsyncClient`` over the appliance's
  ``pooled_transport``, alternating for ``--rounds`` rounds; CPU-ms per request of the
  client's thread only (the answering servers run on another thread's loop).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.channels.signature import sign  # noqa: E402
from bench._router_services import Sink, seed  # noqa: E402

SECRET = "bench-platform-secret"
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 2), "p90_ms": round(pct(ms, 90), 2),
            "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2) if ms else float("nan"),
            "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan")}


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        request = (b"POST /webhooks/meta HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                   b"X-Hub-Signature-256: " + sign(body, SECRET.encode()).encode() +
                   b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.writer.write(request)
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return status


async def drive(port: int, plan: list[tuple[float, bytes, list[bytes]]], connections: int) -> dict[str, Any]:
    """Post every body at its due time; returns ack latencies and failures."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    acks: list[float] = []
    failures = 0
    start = time.monotonic() + 0.5
    sent_at: dict[bytes, float] = {}

    async def one(due: float, body: bytes, mids: list[bytes]) -> None:
        nonlocal opened, failures
        try:
            conn = idle.get_nowait()
        except asyncio.QueueEmpty:
            if opened < connections:
                opened += 1
                conn = Connection(port)
            else:
                conn = await idle.get()
        try:
            status = await conn.post(body)
        except (ConnectionError, asyncio.IncompleteReadError):
            status, conn = 0, Connection(port)
        acks.append(time.monotonic() - due)
        if status != 200:
            failures += 1
        idle.put_nowait(conn)

    tasks = []
    for offset, body, mids in plan:
        due = start + offset
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for mid in mids:
            sent_at[mid] = due
        tasks.append(asyncio.create_task(one(due, body, mids)))
    await asyncio.gather(*tasks)
    return {"acks": acks, "failures": failures, "sent_at": sent_at, "connections": opened,
            "elapsed": time.monotonic() - start}


def build_plan(rate: float, seconds: float, batch: int, pages: list[str]) -> tuple[list[Any], dict[bytes, str]]:
    plan, owner = [], {}
    total = int(rate * seconds)
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    for n in range(0, total, batch):
        entries, mids = [], []
        for k in range(n, min(n + batch, total)):
            page = rng.choice(pages)
            mid = f"m_{k}".encode()
            owner[mid] = page
            mids.append(mid)
            entries.append({"id": page, "time": now_ms, "messaging": [{"sender": {"id": f"psid-{k % 5000}"},
                            "recipient": {"id": page}, "timestamp": now_ms, "message": {"mid": mid.decode(), "text": "hi"}}]})
        body = json.dumps({"object": "page", "entry": entries}, separators=(",", ":")).encode()
        plan.append((n / rate, body, mids))
    return plan, owner


async def run(args: argparse.Namespace, dead: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="router-bench-"))
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    tenants = []
    sink = Sink()
    refused, blackholed = set(), set()
    held: list[socket.socket] = []  # refused tenants' ports: bound, never listening, so no one else gets them
    for i in range(args.tenants):
        tport = free_port()
        tenant_id = f"t{i:012x}"
        page = f"1{i:014d}"
        if i < dead // 2:
            refused.add(page)
            hold = socket.socket()
            hold.bind(("127.0.0.1", 0))
            held.append(hold)
            tport = hold.getsockname()[1]
        elif i < dead:
            blackholed.add(page)
            await sink.listen(tport, blackhole=True)
        else:
            await sink.listen(tport)
        tenants.append((tenant_id, page, f"http://127.0.0.1:{tport}"))
    seed(root / "cp", master_key, tenants)
    (root / "urls.json").write_text(json.dumps({t: u for t, _, u in tenants}))
    port = free_port()
    log = open(root / "cp.log", "wb")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_router_services.py"), "cp",
                             str(root / "cp"), master_key, str(port), SECRET, str(root / "urls.json")],
                            stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]),
                                                         **({"BENCH_PROBE": str(root / "probe.json")} if args.probe else {})})
    try:
        await _wait_ready(port)
        await asyncio.sleep(args.settle)  # the sweep's first pass (usage of every tenant) runs at start
        plan, owner = build_plan(args.rate, args.seconds, args.batch, [p for _, p, _ in tenants])
        cpu_before, driver_before, wall_before = _cpu(proc.pid), time.process_time(), time.monotonic()
        sys_before = _cpu(proc.pid, system_only=True)
        load_before = os.getloadavg()
        spy = _start_profile(proc.pid, args.seconds + 1, dead) if args.profile else None
        result = await drive(port, plan, args.connections)
        healthy = {m: p for m, p in owner.items() if p not in refused and p not in blackholed}
        # Wait for the healthy tenants' events while they keep arriving; "lost" means none came
        # for 30 s (on a loaded machine the backlog can take longer than that to drain).
        deadline, seen = time.monotonic() + 30, len(sink.arrivals)
        while time.monotonic() < deadline and not all(m in sink.arrivals for m in healthy):
            await asyncio.sleep(0.2)
            if len(sink.arrivals) > seen:
                deadline, seen = time.monotonic() + 30, len(sink.arrivals)
        cpu, sys_cpu = _cpu(proc.pid) - cpu_before, _cpu(proc.pid, system_only=True) - sys_before
        driver_cpu, wall = time.process_time() - driver_before, time.monotonic() - wall_before
        profile = await asyncio.to_thread(_finish_profile, *spy) if spy else None
        lost = [m for m in healthy if m not in sink.arrivals]
        delivery = [sink.arrivals[m] - result["sent_at"][m] for m in healthy if m in sink.arrivals]
        dead_ids = [t for t, p, _ in tenants if p in refused or p in blackholed]
        pending = await asyncio.to_thread(_pending, root / "cp", master_key, dead_ids)
        expected_pending = sum(1 for p in owner.values() if p in refused or p in blackholed)
        outcome = {
            "dead": dead, "events": len(owner), "posts": len(plan), "batch": args.batch,
            "ack": summary(result["acks"]), "non_200": result["failures"],
            "ack_ms_each": [round(1000 * a, 2) for a in result["acks"]],  # for a p99 pooled over runs
            "achieved_events_per_s": round(len(owner) / result["elapsed"], 1),
            "healthy_events": len(healthy), "lost": len(lost), "duplicates": sink.duplicates,
            "delivery_healthy": summary(delivery), "forward_requests": sink.requests,
            "dead_tenant_events": expected_pending, "dead_tenant_events_journaled": pending,
            "cp_cpu_seconds": round(cpu, 2), "cp_cpu_ms_per_event": round(cpu * 1000 / max(1, len(owner)), 3),
            "cp_cpu_system_share": round(sys_cpu / max(cpu, 1e-9), 2), "wall_seconds": round(wall, 2), "cp_core_share": round(cpu / wall, 2),
            "driver_cpu_ms_per_event": round(driver_cpu * 1000 / max(1, len(owner)), 3),
            "driver_core_share": round(driver_cpu / wall, 2),
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "connections": result["connections"], **({"profile_share": profile} if profile else {}),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await sink.aclose()
        for hold in held:
            hold.close()
        log.close()
    if args.probe:
        outcome["probe"] = _probe_summary(json.loads((root / "probe.json").read_text()))
    return outcome


def _probe_summary(stats: dict[str, list[Any]]) -> dict[str, Any]:
    """``--probe``: where an ack's time went (see ``_router_services._probe``)."""
    batches = stats["batch"]
    loaded = stats.get("first_accept", [0.0])[0]  # GC counted from the first delivery on (start-up's left out)
    wall = [b[0] for b in batches]
    cpu = [b[1] for b in batches]
    return {
        "accept": summary(stats["accept"]), "loop_lag": summary([lag for lag, _ in stats["lag"]]),
        "loop_lags_over_20ms": len([lag for lag, _ in stats["lag"] if lag > 0.02]),
        "gc": {f"gen{g}": {"count": len(d := [s for gen, s, at in stats["gc"] if gen == g and at >= loaded]),
                           "max_ms": round(1000 * max(d, default=0), 1), "total_ms": round(1000 * sum(d), 1)}
               for g in (0, 1, 2)},
        "heap_objects_tracked_frozen": stats.get("heap_objects"),
        "gc_threshold": stats.get("gc_threshold"),
        "slow_callbacks_over_5ms": _slow_callbacks(stats.get("slow", []), loaded),
        "late_selects_over_20ms": [[round(1000 * w, 1), round(1000 * t, 1), round(1000 * c, 1)] for w, t, c, at
                                   in stats.get("late_select", []) if at >= loaded],  # wall, timeout, CPU ms
        "loop_iterations_over_20ms": [[round(1000 * w, 1), round(1000 * c, 1), round(1000 * q, 1), n,
                                       _writer_overlap(batches, at, end)]
                                      for w, c, at, n, end, q in stats.get("iterations", []) if at >= loaded],
        # wall less select, the loop thread's CPU, its wait for a core (preempted), callbacks left
        # ready, ms of writer batches overlapping it
        "writer_queue_wait": summary(stats["queued"]),
        "writer_batch_wall": summary(wall), "writer_batches": len(batches),
        "writer_jobs_per_batch_mean": round(statistics.fmean([b[2] for b in batches]), 2) if batches else 0,
        "writer_thread_cpu_share_of_wall": round(sum(cpu) / max(1e-9, sum(wall)), 2),
        "journal_wall": summary([j[0] for j in stats["journal"]]),
        "journal_deliveries_per_job_mean": round(statistics.fmean([j[1] for j in stats["journal"]]), 2)
        if stats["journal"] else 0,
    }


def _writer_overlap(batches: list[Any], start: float, end: float) -> float:
    """Milliseconds of writer-thread batches inside ``start..end`` (a slow loop iteration)."""
    return round(1000 * sum(max(0.0, min(end, b[3] + b[0]) - max(start, b[3])) for b in batches), 1)


def _slow_callbacks(slow: list[Any], loaded: float) -> dict[str, Any]:
    """Event-loop callbacks over 5 ms under load, by name: count, wall (sum, max) and the
    loop thread's CPU in them (wall much above CPU: the thread was waiting for the GIL or a core)."""
    by: dict[str, list[float]] = {}
    for wall, cpu, at, name in slow:
        if at >= loaded:
            entry = by.setdefault(name, [0, 0.0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += wall
            entry[2] = max(entry[2], wall)
            entry[3] += cpu
    return {name: {"count": n, "wall_ms": round(1000 * w, 1), "max_ms": round(1000 * m, 1), "cpu_ms": round(1000 * c, 1)}
            for name, (n, w, m, c) in sorted(by.items(), key=lambda kv: -kv[1][1])}


# The parts of the work, by the first frame of a sample's stack that matches (innermost wins).
PARTS = [
    ("writer thread: journal + marks (SQLCipher)", "Gateway._write_loop"),
    ("forwarding (client, batches, signing)", "Forwarder."),
    ("webhook handler: verify, split, route", "receive_webhook"),
    ("usage sweep (UsageCollector, at start)", "UsageCollector"),
    ("inbound HTTP (uvicorn + Litestar)", "httptools_impl"),
]


def _start_profile(pid: int, seconds: float, dead: int) -> tuple[subprocess.Popen[bytes], Path]:
    import shutil

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"router-profile-{time.strftime('%Y%m%d-%H%M%S')}-dead{dead}.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen([spy, "record", "-p", str(pid), "--gil", "-r", "200", "-f", "raw", "-o", str(out),
                             "-d", str(int(seconds) + 1), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def _finish_profile(spy: subprocess.Popen[bytes], out: Path) -> dict[str, float]:
    spy.wait(120)
    counts: dict[str, int] = {}
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        part = next((name for name, mark in PARTS if mark in stack), "other")
        counts[part] = counts.get(part, 0) + int(n)
    total = sum(counts.values()) or 1
    return {part: round(100 * n / total, 1) for part, n in sorted(counts.items(), key=lambda kv: -kv[1])}


def _cpu(pid: int, system_only: bool = False) -> float:
    """CPU seconds of ``pid`` (user + system, or system only), all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[12]) + (0 if system_only else int(fields[11]))) / os.sysconf("SC_CLK_TCK")


def _pending(data_dir: Path, master_key: str, tenant_ids: list[str]) -> int:
    """Events of the dead tenants pending in the journal (a delivery row may hold several)."""
    from control_plane.db import direct_database
    from control_plane.settings import ControlPlaneSettings

    if not tenant_ids:
        return 0
    marks = ",".join("?" * len(tenant_ids))
    with direct_database(ControlPlaneSettings(data_dir=data_dir, master_key=master_key)) as (db, _):
        return int(db.conn.execute(f"SELECT coalesce(sum(entries), 0) FROM deliveries WHERE status = 'pending' "
                                   f"AND tenant_id IN ({marks})", tenant_ids).fetchone()[0])


async def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if b" 200 " in await reader.read(200):
                writer.close()
                return
            writer.close()
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the control plane did not become ready")


OK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nEVENT_RECEIVED"


def _serve_origins(count: int, ports: list[int], ready: Any) -> None:
    """Raw servers answering 200 at once, on this (separate) thread's own event loop."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                writer.write(OK_ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> None:
        for _ in range(count):
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            ports.append(server.sockets[0].getsockname()[1])
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


async def _client_round(post: Any, urls: list[str], requests: int, inflight: int) -> float:
    body = b"x" * 1024
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64}
    todo = iter(range(requests))

    async def worker() -> None:
        for n in todo:
            assert await post(urls[n % len(urls)] + "/webhooks/meta", body, headers) == 200

    started = time.thread_time()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return (time.thread_time() - started) * 1000 / requests


async def client_only(rounds: int, requests: int = 3000, origins: int = 10, inflight: int = 8) -> dict[str, Any]:
    import threading

    import httpx

    from appliance.channels.transport import pooled_transport
    from control_plane.routing.client import KEEPALIVE_SECONDS, forwarding_client

    ports: list[int] = []
    ready = threading.Event()
    threading.Thread(target=_serve_origins, args=(origins, ports, ready), daemon=True).start()
    ready.wait(10)
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    direct = forwarding_client(user_agent="bench")
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=KEEPALIVE_SECONDS)
    over_httpx = httpx.AsyncClient(transport=pooled_transport(limits), follow_redirects=False, trust_env=False)

    async def via_direct(url: str, body: bytes, headers: dict[str, str]) -> int:
        return await direct.post(url, body, headers, 10.0)

    async def via_httpx(url: str, body: bytes, headers: dict[str, str]) -> int:
        return (await over_httpx.post(url, content=body, headers=headers, timeout=10.0)).status_code

    sides = {"aiohttp_direct": via_direct, "httpx_over_pooled_transport": via_httpx}
    for post in sides.values():  # warm-up: imports, first connections
        await _client_round(post, urls, 200, inflight)
    results: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            results[name].append(round(await _client_round(sides[name], urls, requests, inflight), 3))
    await direct.aclose()
    await over_httpx.aclose()
    medians = {name: statistics.median(v) for name, v in results.items()}
    return {"cpu_ms_per_request": results, "median": medians,
            "ratio_httpx_to_direct": round(medians["httpx_over_pooled_transport"] / medians["aiohttp_direct"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--dead", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1, help="events per POST")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--baseline", action="store_true", help="also run with no dead tenant first")
    parser.add_argument("--client-only", action="store_true", help="the forwarding client alone (see above)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between ready and the load")
    parser.add_argument("--profile", action="store_true", help="py-spy --gil on the control plane (see above)")
    parser.add_argument("--probe", action="store_true", help="time the ack path inside the control plane (see above)")
    args = parser.parse_args()
    if args.client_only:
        outcome = asyncio.run(client_only(args.rounds))
        print(json.dumps(outcome, indent=2))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"router-client-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps({"args": vars(args), "load_average": os.getloadavg(), **outcome}, indent=2))
        print(f"results: {out}")
        return
    runs = []
    for dead in ([0] if args.baseline else []) + [args.dead]:
        outcome = asyncio.run(run(args, dead))
        runs.append(outcome)
        print(json.dumps({k: v for k, v in outcome.items() if k != "ack_ms_each"}, indent=2))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"router-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "load_average": os.getloadavg(),
                               "heap_policy": os.environ.get("BENCH_HEAP", "serve"), "runs": runs}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
