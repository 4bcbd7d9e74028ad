"""Inbound message -> bot reply: the appliance's flow engine against pywa's echo bot, side by side.

    .venv/bin/python bench/reply.py [--rounds 5] [--events 3000] [--warmup 300] [--concurrency 32]
                                    [--pace reply|ack] [--commit REV] [--py-spy appliance|pywa]

Two sides, each answering WhatsApp text messages with ``Hi <first name>, you said something!``
through the same local Graph API stand-in (``bench/graph_sink.py``):

- **appliance**: ``aat-appliance serve`` on a fresh data directory (``AAT_MASTER_KEY``,
  ``AAT_META_APP_SECRET``, ``AAT_GRAPH_API_BASE`` = the sink, ``AAT_LOG_LEVEL=warning``,
  ``AAT_RATE_LIMIT_WHATSAPP=1000``), an API token made with ``aat-appliance tokens create``
  before it starts, a WhatsApp channel connected with ``POST /api/v1/channels``, and a flow with a
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
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (  # noqa: E402
    BENCH_DIR,
    REPO,
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    Server,
    appliance_env,
    code_version,
    free_port,
    machine,
    median,
    require_module,
    wait_ready,
)
from events import PHONE_NUMBER_ID, WABA_ID, http_request  # noqa: E402
from graph_sink import GraphSink  # noqa: E402

APP_SECRET = "bench-app-secret-0123456789abcdef"
ACCESS_TOKEN = "EAAbenchACCESSTOKEN0123456789"
SIDES = ("appliance", "pywa")
RATE_LIMIT_WHATSAPP = 1000
TARGET_RATIO = 1.5
TARGET_P99_MS = 100.0

FLOW = {
    "schema": "aat.flow/v1",
    "name": "Echo",
    "triggers": [{"type": "default", "channels": ["whatsapp"]}],
    "start": "reply",
    "steps": {"reply": {"type": "message", "text": "Hi {{contact.first_name|there}}, you said something!"}},
}

_FIRST = ["Nino", "Giorgi", "Ana", "Luka", "Mariam", "Davit", "ნინო", "გიორგი", "Sofia", "Levan",
          "Tamar", "Irakli", "Elene", "Nika", "Salome", "Zurab"]
_LAST = ["Beridze", "Kapanadze", "Gelashvili", "Lomidze", "მაისურაძე", "Tsiklauri", "Abashidze"]
_TEXTS = ["Hello, are you open on Sunday?", "Do you ship to Tbilisi?", "How much is the large size?",
          "გამარჯობა! Is the blue one still available?", "Thanks, see you tomorrow 👋"]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    wa_id: str
    bsuid: str
    expected: str  # the reply text both bots must send
    request: bytes  # the complete signed HTTP request


def build_events(round_no: int, count: int, start: int, sent_at: int) -> list[Event]:
    """``count`` WhatsApp text deliveries, one per new contact, as Meta sends them (compact JSON,
    non-ASCII escaped, ``contacts[].user_id`` = the BSUID), signed with the app secret."""
    secret = APP_SECRET.encode()
    out = []
    for seq in range(start, start + count):
        first = _FIRST[seq % len(_FIRST)]
        name = first if seq % 5 == 0 else f"{first} {_LAST[seq % len(_LAST)]}"
        wa_id = f"9955{round_no:02d}{seq:06d}"
        bsuid = f"GE.4{round_no:03d}{seq:016d}"
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{
                "id": WABA_ID,
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
                        "contacts": [{"profile": {"name": name}, "wa_id": wa_id, "user_id": bsuid}],
                        "messages": [{
                            "id": f"wamid.HBgMBENCH{round_no:02d}{seq:08d}FQIAEhgU",
                            "timestamp": str(sent_at),
                            "from": wa_id,
                            "type": "text",
                            "text": {"body": _TEXTS[seq % len(_TEXTS)]},
                        }],
                    },
                }],
            }],
        }
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
        out.append(Event(seq, wa_id, bsuid, f"Hi {first}, you said something!", http_request(body, secret)))
    return out


# --- the load generator -----------------------------------------------------------------------


@dataclass
class _Sent:
    sent: float  # time.monotonic() just before the request was written
    sent_wall: float  # time.time() at the same moment (to compare with the database's timestamps)
    acked: float = math.nan
    status: int = 0


@dataclass
class _Load:
    events: list[Event]
    sent: dict[int, _Sent] = field(default_factory=dict)
    timeouts: int = 0
    transport_errors: list[str] = field(default_factory=list)


class Driver:
    """``concurrency`` senders and the sink, in this process's event loop."""

    def __init__(self, sink: GraphSink, port: int, concurrency: int, pace: str, reply_timeout: float) -> None:
        self.sink = sink
        self.port = port
        self.concurrency = concurrency
        self.pace = pace
        self.reply_timeout = reply_timeout
        self._waiting: dict[str, asyncio.Future[float]] = {}
        sink.on_reply = self._on_reply

    def _on_reply(self, to: str, at: float) -> None:
        future = self._waiting.pop(to, None)
        if future is not None and not future.done():
            future.set_result(at)

    async def run(self, events: list[Event]) -> _Load:
        load = _Load(events)
        queue = iter(events)  # shared: asyncio switches only at awaits, so next() is safe
        await asyncio.gather(*(self._sender(queue, load) for _ in range(self.concurrency)))
        return load

    async def _sender(self, queue: Any, load: _Load) -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for event in queue:
                future: asyncio.Future[float] = loop.create_future()
                self._waiting[event.wa_id] = self._waiting[event.bsuid] = future
                for attempt in (1, 2):
                    record = _Sent(time.monotonic(), time.time())
                    load.sent[event.seq] = record
                    writer.write(event.request)
                    try:
                        record.status = await _read_status(reader)
                        break
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        # A keep-alive connection the server closed while this sender waited
                        # for a reply (uvicorn closes idle ones after 5 s): post again on a new
                        # connection, as Meta would. The delivery's wamid makes a repeat harmless.
                        load.transport_errors.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                if not record.status:
                    continue
                record.acked = time.monotonic()
                if record.status != 200 or self.pace != "reply":
                    continue
                try:
                    async with asyncio.timeout(self.reply_timeout):
                        await future
                except TimeoutError:
                    load.timeouts += 1
        finally:
            writer.close()

    async def wait_answered(self, load: _Load, timeout: float) -> None:
        """Until every acknowledged event has a reply, or no new reply came for ``timeout`` s
        (with ``--pace ack`` a backlog may still be draining when the last 200 arrives)."""
        expected = [e for e in load.events if e.seq in load.sent and load.sent[e.seq].status == 200]
        seen, deadline = -1, time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = sum(1 for e in expected if e.wa_id in self.sink.replies or e.bsuid in self.sink.replies)
            if answered == len(expected):
                return
            if answered != seen:
                seen, deadline = answered, time.monotonic() + timeout
            await asyncio.sleep(0.05)

    def forget(self) -> None:
        self._waiting.clear()


async def _read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding":
            raise ValueError("chunked response")
    if length:
        await reader.readexactly(length)
    return status


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (``q`` in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _distribution(ms: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(ms, q), 2) for q in (50, 90, 99)} | {
        "max": round(max(ms), 2) if ms else math.nan, "mean": round(sum(ms) / len(ms), 2) if ms else math.nan}


def score(driver: Driver, load: _Load, arrivals: dict[int, float]) -> dict[str, Any]:
    """Match every event to the replies its contact received; ``arrivals`` gets the first
    reply's arrival time per event."""
    latencies, acks = [], []
    unanswered = duplicates = wrong_text = unauthorized = wrong_sender = not_acked = 0
    known: set[str] = set()
    first_sent = min(s.sent for s in load.sent.values())
    last_reply = first_sent
    for event in load.events:
        known.update((event.wa_id, event.bsuid))
        record = load.sent.get(event.seq)
        if record is None or record.status != 200:
            not_acked += 1
            continue
        acks.append((record.acked - record.sent) * 1000)
        replies = (driver.sink.replies.get(event.wa_id, []) + driver.sink.replies.get(event.bsuid, []))
        if not replies:
            unanswered += 1
            continue
        duplicates += len(replies) - 1
        first = min(r.at for r in replies)
        arrivals[event.seq] = first
        last_reply = max(last_reply, first)
        latencies.append((first - record.sent) * 1000)
        wrong_text += sum(r.text != event.expected for r in replies)
        unauthorized += sum(not r.authorized for r in replies)
        wrong_sender += sum(r.sender != PHONE_NUMBER_ID for r in replies)
    strangers = sum(len(v) for k, v in driver.sink.replies.items() if k not in known)
    elapsed = last_reply - first_sent
    answered = len(latencies)
    statuses: dict[str, int] = {}
    for record in load.sent.values():
        statuses[str(record.status)] = statuses.get(str(record.status), 0) + 1
    return {
        "events": len(load.events), "answered": answered, "unanswered": unanswered, "not_acknowledged": not_acked,
        "duplicate_replies": duplicates, "wrong_text": wrong_text, "unauthorized": unauthorized,
        "wrong_sender": wrong_sender, "replies_to_unknown_recipients": strangers,
        "reply_timeouts": load.timeouts, "transport_errors": load.transport_errors[:20],
        "deliveries_posted_again": sum(e.startswith("attempt 1") for e in load.transport_errors),
        "ack_statuses": statuses, "other_graph_requests": driver.sink.counts.other,
        "graph_connections_opened": driver.sink.counts.connections,
        "seconds": round(elapsed, 3), "replies_per_s": round(answered / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": _distribution(latencies), "ack_ms": _distribution(acks),
        "exactly_once": answered == len(load.events) and duplicates == 0 and strangers == 0
        and wrong_text == 0 and unauthorized == 0 and wrong_sender == 0,
    }


# --- the two sides ----------------------------------------------------------------------------


def _api(port: int, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status >= 300:
        raise BenchError(f"{method} {path} answered {response.status}: {data[:500]!r}")
    return json.loads(data) if data else {}


def setup_appliance(port: int, token: str) -> dict[str, Any]:
    """Connect the WhatsApp number and publish the flow, through the public API."""
    channel = _api(port, token, "POST", "/api/v1/channels", {
        "type": "whatsapp", "external_id": PHONE_NUMBER_ID, "access_token": ACCESS_TOKEN, "waba_id": WABA_ID,
    })
    flow = _api(port, token, "POST", "/api/v1/flows", FLOW)
    published = _api(port, token, "POST", f"/api/v1/flows/{flow['id']}/publish")
    if published.get("warnings"):
        raise BenchError(f"publishing the flow gave warnings: {published['warnings']}")
    return {"channel_id": channel["id"], "flow_id": flow["id"], "flow_version": published["version"]}


@dataclass
class Side:
    name: str
    server: Server
    data_dir: Path | None = None
    setup: dict[str, Any] = field(default_factory=dict)


def _appliance_cli(code: Path | None) -> list[str]:
    """``aat-appliance``, or the same CLI run from a snapshot of a commit (see ``--commit``)."""
    return [str(VENV_BIN / "aat-appliance")] if code is None else [sys.executable, "-m", "appliance.cli"]


def start_side(name: str, work: Path, tag: str, sink: GraphSink, master_key: bytes,
               code: Path | None = None) -> Side:
    """Start one side on a fresh server (blocking: call through ``asyncio.to_thread``)."""
    port = free_port()
    if name == "appliance":
        data_dir = work / f"data-appliance-{tag}"
        env = appliance_env(master_key=master_key, app_secret=APP_SECRET)
        env.update(AAT_GRAPH_API_BASE=sink.base_url, AAT_RATE_LIMIT_WHATSAPP=str(RATE_LIMIT_WHATSAPP))
        if code is not None:
            env["PYTHONPATH"] = str(code)  # ahead of the editable install's finder
        created = subprocess.run(
            [*_appliance_cli(code), "tokens", "create", "--name", "bench", "--data-dir", str(data_dir)],
            env=env, capture_output=True, text=True, check=False, cwd=work,
        )
        if created.returncode != 0 or not created.stdout.strip():
            raise BenchError(f"aat-appliance tokens create failed: {created.stderr.strip()}")
        token = created.stdout.strip().splitlines()[-1]
        argv = [*_appliance_cli(code), "serve", "--port", str(port), "--data-dir", str(data_dir)]
        side = Side(name, Server(name, argv, env, port, work, work / f"{name}-{tag}.log"), data_dir)
        side.server.start()
        wait_ready(side.server)
        side.setup = setup_appliance(port, token)
        return side
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AAT_", "BENCH_"))}
    env.update(BENCH_APP_SECRET=APP_SECRET, BENCH_ACCESS_TOKEN=ACCESS_TOKEN, BENCH_GRAPH_BASE=sink.base_url,
               PYTHONUNBUFFERED="1")
    argv = [sys.executable, str(BENCH_DIR / "pywa_echo.py"), "--port", str(port)]
    side = Side(name, Server(name, argv, env, port, work, work / f"{name}-{tag}.log"))
    side.server.start()
    wait_ready(side.server)
    return side


def stop_side(side: Side) -> None:
    code = side.server.stop()
    # uvicorn re-raises the SIGTERM it handled after a graceful shutdown: -15 is a clean exit.
    if code not in (0, -15):
        raise BenchError(f"{side.name} exited with code {code}; see {side.server.log_path}\n{side.server.log_tail()}")


def _open_workspace(data_dir: Path, master_key: bytes) -> Any:
    from appliance.settings import Settings
    from appliance.store import connection
    from appliance.store.workspace import load_keys

    settings = Settings(data_dir=data_dir, master_key=base64.b64encode(master_key).decode(), _env_file=None)
    _, data_key = load_keys(settings, allow_generate=False)
    return settings.database_path, connection.connect(settings.database_path, data_key, readonly=True)


def _wall(iso: str | None) -> float:
    from appliance.timeutil import from_iso

    return from_iso(iso).timestamp() if iso else math.nan


def check_appliance(data_dir: Path, master_key: bytes, expected: int, load: _Load,
                    arrivals: dict[int, float]) -> dict[str, Any]:
    """After the server stopped: open the database with its key; every inbound message and every
    reply must be stored, the outbox and the journal empty. Then ``_breakdown``."""
    path, conn = _open_workspace(data_dir, master_key)
    try:
        counts = {
            "inbound_messages": conn.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0],
            "replies_sent": conn.execute(
                "SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent'").fetchone()[0],
            "replies_not_sent": conn.execute(
                "SELECT count(*) FROM messages WHERE direction = 'out' AND status != 'sent'").fetchone()[0],
            "outbox_left": conn.execute("SELECT count(*) FROM outbox").fetchone()[0],
            "journal_not_processed": conn.execute(
                "SELECT count(*) FROM webhook_journal WHERE state != 'processed'").fetchone()[0],
            "flow_runs": conn.execute("SELECT count(*) FROM flow_runs").fetchone()[0],
        }
        breakdown = _breakdown(conn, load, arrivals)
    finally:
        conn.close()
    with open(path, "rb") as handle:
        counts["encrypted_at_rest"] = handle.read(16) != b"SQLite format 3\x00"
    counts["ok"] = (counts["inbound_messages"] == expected and counts["replies_sent"] == expected
                    and counts["replies_not_sent"] == 0 and counts["outbox_left"] == 0
                    and counts["journal_not_processed"] == 0 and counts["encrypted_at_rest"])
    return {**counts, "breakdown_ms": breakdown}


def _breakdown(conn: Any, load: _Load, arrivals: dict[int, float]) -> dict[str, Any]:
    """Where an appliance reply's time goes, per measured event, from the database's own times
    (wall clock, milliseconds: ``iso_now()`` at each step) against this process's ``time.time()``
    when the delivery was sent (the sink's arrival time is converted with the same event's pair
    of ``time.monotonic()``/``time.time()`` readings):

    - ``journaled``: sent -> ``webhook_journal.received_at`` (taken in the webhook handler just
      before the journal write is queued: HTTP and signature check);
    - ``applied``: ``received_at`` -> ``processed_at`` (taken when the processor's writer job that
      applies the row starts: the 200, the processor's wake-up, reading and parsing the pending
      rows, and the wait of its background job on the writer thread);
    - ``to_graph``: ``processed_at`` -> the reply's arrival at the Graph stand-in (applying the
      batch and committing it, waking the sender, claiming the row, rendering, the rate limiter
      and the HTTP request);
    - ``recorded``: arrival -> the reply's ``messages.sent_at`` (Meta's answer read and
      ``mark_sent`` committed; not part of inbound-to-reply, shown for completeness).
    """
    rows = conn.execute(
        """SELECT c.wa_id, j.received_at, j.processed_at, o.sent_at
           FROM contacts c
           JOIN webhook_journal_contacts jc ON jc.contact_id = c.id
           JOIN webhook_journal j ON j.id = jc.journal_id
           JOIN messages o ON o.contact_id = c.id AND o.direction = 'out'"""
    ).fetchall()
    by_wa = {row[0]: row[1:] for row in rows}
    stages: dict[str, list[float]] = {"journaled": [], "applied": [], "to_graph": [], "recorded": []}
    for event in load.events:
        times = by_wa.get(event.wa_id)
        record = load.sent.get(event.seq)
        if times is None or record is None or event.seq not in arrivals:
            continue
        received, processed, sent_at = (_wall(t) for t in times)
        arrived = record.sent_wall + (arrivals[event.seq] - record.sent)
        stages["journaled"].append((received - record.sent_wall) * 1000)
        stages["applied"].append((processed - received) * 1000)
        stages["to_graph"].append((arrived - processed) * 1000)
        stages["recorded"].append((sent_at - arrived) * 1000)
    return {name: _distribution(values) for name, values in stages.items() if values}


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


def snapshot(rev: str, work: Path) -> tuple[Path, dict[str, Any]]:
    """``git archive`` of ``rev`` into the work directory: the appliance (and this process, when
    it opens the databases) then runs that commit's code, not a working tree that others may be
    editing during the run."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True,
                            text=True, check=False).stdout.strip()
    if not commit:
        raise BenchError(f"git cannot resolve {rev!r}")
    target = work / f"code-{commit}"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=False)
    if archive.returncode != 0:
        raise BenchError(f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(target / "appliance"), str(target / "migrations")],
                   check=True)
    sys.path.insert(0, str(target))
    return target, {"commit": commit, "snapshot_of": rev, "modified_tracked_files": 0}


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


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in SIDES:
        mine = [r for r in runs if r["side"] == side]
        if not mine:
            continue
        out[side] = {
            "replies_per_s_median": median([r["replies_per_s"] for r in mine]),
            "p50_ms_median": median([r["latency_ms"]["p50"] for r in mine]),
            "p90_ms_median": median([r["latency_ms"]["p90"] for r in mine]),
            "p99_ms_median": median([r["latency_ms"]["p99"] for r in mine]),
            "p99_ms_worst": max(r["latency_ms"]["p99"] for r in mine),
            "ack_p99_ms_median": median([r["ack_ms"]["p99"] for r in mine]),
            "server_cpu_ms_per_reply_median": median([r["server_cpu_ms_per_reply"] for r in mine]),
            "server_cpu_ms_per_reply_event_loop_thread_median": median(
                [r["server_cpu_ms_per_reply_event_loop_thread"] for r in mine]),
            "server_cpu_ms_per_reply_other_threads_median": median(
                [r["server_cpu_ms_per_reply_other_threads"] for r in mine]),
            "graph_connections_opened_median": median([r["graph_connections_opened"] for r in mine]),
            "server_cpu_share_median": median([r["server_cpu_share_of_one_core"] for r in mine]),
            "rss_mib_median": median([r["rss_mib_at_end"] for r in mine]),
            "every_event_answered_exactly_once": all(r["exactly_once"] for r in mine),
        }
        if side == "appliance":
            out[side]["storage_ok"] = all(r["storage"]["ok"] for r in mine)
            stages = [k for k in mine[0]["storage"]["breakdown_ms"]]
            out[side]["stages_ms_median"] = {
                stage: {q: median([r["storage"]["breakdown_ms"][stage][q] for r in mine
                                   if stage in r["storage"]["breakdown_ms"]]) for q in ("p50", "p99")}
                for stage in stages
            }
    if "appliance" in out and "pywa" in out:
        paired = []
        for tag in sorted({r["round"] for r in runs}):
            pair = {r["side"]: r for r in runs if r["round"] == tag}
            if len(pair) == 2 and pair["pywa"]["replies_per_s"] > 0:
                paired.append(pair["appliance"]["replies_per_s"] / pair["pywa"]["replies_per_s"])
        a, b = out["appliance"], out["pywa"]
        ratio = round(a["replies_per_s_median"] / b["replies_per_s_median"], 3)
        out["ratio"] = {
            "replies_per_s": ratio,
            "replies_per_s_paired_median": round(median(paired), 3) if paired else None,
            "p50": round(a["p50_ms_median"] / b["p50_ms_median"], 3),
            "p99": round(a["p99_ms_median"] / b["p99_ms_median"], 3),
        }
        out["targets"] = {
            "replies_per_s_ratio_ge_1_5": ratio >= TARGET_RATIO,
            "every_event_answered": a["every_event_answered_exactly_once"],
            "p99_lt_100_ms": a["p99_ms_median"] < TARGET_P99_MS,
        }
    return out


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
            for name in order:
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

    summary = _summary(runs)
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
                    "(1.02 s + round trip); the sender has at most 64 sends in flight.",
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
    for side in SIDES:
        if side in summary:
            s = summary[side]
            print(f"{side:<9} median {s['replies_per_s_median']:>7.1f} replies/s  p50 {s['p50_ms_median']:6.1f} ms  "
                  f"p99 {s['p99_ms_median']:6.1f} ms (worst round {s['p99_ms_worst']:.1f})  "
                  f"{s['server_cpu_ms_per_reply_median']:.2f} server CPU-ms/reply  RSS {s['rss_mib_median']} MiB  "
                  f"exactly once: {'yes' if s['every_event_answered_exactly_once'] else 'NO'}")
    if "appliance" in summary and "stages_ms_median" in summary["appliance"]:
        print("appliance stages (median of rounds): " + ", ".join(
            f"{k} p50 {v['p50']:.1f} / p99 {v['p99']:.1f} ms" for k, v in summary["appliance"]["stages_ms_median"].items()))
    if "ratio" in summary:
        r, t = summary["ratio"], summary["targets"]
        print(f"appliance/pywa: replies/s {r['replies_per_s']:.3f} (median of per-round ratios "
              f"{r['replies_per_s_paired_median']:.3f}), target >= {TARGET_RATIO} "
              f"{'met' if t['replies_per_s_ratio_ge_1_5'] else 'MISSED'}; p99 {r['p99']:.3f}x; "
              f"appliance p99 < {TARGET_P99_MS:.0f} ms {'met' if t['p99_lt_100_ms'] else 'MISSED'}; "
              f"every event answered {'yes' if t['every_event_answered'] else 'NO'}")
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
