"""The web app under a large workspace: inbox list, a 500-message thread, live fan-out.

    .venv/bin/python bench/web.py [--contacts 50000] [--messages 1000000] [--requests 100]
                                  [--sessions 50] [--fanout-rounds 20] [--compare] [--keep]
                                  [--data-dir DIR]   # reuse a workspace kept by --keep

1. **Seed** an encrypted workspace straight through the store's SQLCipher connection (bulk
   ``executemany`` in 100,000-row transactions, ``synchronous=OFF`` while seeding only):
   three channels, ``--contacts`` contacts with one conversation each (30 % open, of those a
   third assigned to the benchmark's user, a third to a colleague; unread counts), and
   ``--messages`` messages in both directions (text, photos, story replies, comments, button
   taps, AI answers with passages, failed sends; the messages' indexes are built once after the
   insert). One conversation holds 600 messages spread
   over the whole history (the worst case for locality: one per ~1,700 rows), the others
   share the rest. Timed and reported.
2. **Serve** it with ``aat-appliance serve`` (``AAT_LOG_LEVEL=info``: the access log records
   each request's server time, from the first byte in to the last byte out, in
   ``duration_ms``; the server process's CPU time per request is read with psutil, a figure
   less moved by other work on a shared machine), sign in through ``POST /signin`` like a browser, then for each screen
   region: 5 unmeasured requests, then ``--requests`` sequential requests on one keep-alive
   connection. Reported per endpoint: p50/p95/max of the server's ``duration_ms`` and p50/p95 of
   the client's wall time. Target: p95 < 50 ms for the inbox list and the 500-message thread.
3. **Fan-out**: ``--sessions`` open ``GET /api/v1/events`` streams (3 signed-in users'
   cookies, as browser tabs), then ``--fanout-rounds`` times a signed Messenger webhook with a
   new message from an existing contact. Measured per round: webhook POST sent -> the
   ``message.created`` event read by the first and by the last of the streams, and the spread
   (last - first). Target: every session has it in < 200 ms.

Results: ``bench/results/web-<time>.json``. The work directory is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _support import (
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    Server,
    appliance_env,
    code_version,
    free_port,
    machine,
    median,
    running,
    wait_ready,
)
from events import sign

try:
    import psutil
except ImportError:  # pragma: no cover - the bench extra
    raise BenchError("psutil is missing; install it with: .venv/bin/pip install -e '.[bench]'") from None

APP_SECRET = "bench-app-secret-0123456789abcdef"
MASTER_KEY = bytes(range(11, 43))
PASSWORD = "bench web password 0123456789"
PAGE_ID, IG_ID, WA_NUMBER_ID = "112233445566778", "17841455566677788", "109876543210987"
USERS = [("olga.owner@example.com", "Olga", "owner"), ("ana.agent@example.com", "Ana", "agent"),
         ("ben.agent@example.com", "Ben", "agent")]
BIG_THREAD = 600
BATCH = 100_000
NAMES = ["Nino Beridze", "Giorgi", "Ana Lima", "Tamar", "Luka Kapanadze", "Mariam", "David", "Salome", "ირაკლი", "Eka"]
TEXTS = ["Hello, are you open on Sunday?", "Do you ship to Tbilisi?", "How much is the large size?",
         "გამარჯობა! Is the blue one still available?", "Can I change my order #4821 to two items?",
         "Thanks, see you tomorrow 👋", "What are your opening hours during the holidays?"]
REPLIES = ["Yes, we are open 10-18 on Sunday.", "We ship everywhere in Georgia, 2-3 days.",
           "The large one is 45 GEL.", "Sure, I changed it for you."]


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _settings(data_dir: Path) -> Any:
    from appliance.settings import Settings

    return Settings(data_dir=data_dir, master_key=base64.b64encode(MASTER_KEY).decode(), _env_file=None)


def _external(i: int) -> tuple[int, str]:
    """Contact ``i`` (0-based): its channel id (1 Messenger, 2 Instagram, 3 WhatsApp) and Meta's id."""
    channel = i % 3 + 1
    return channel, (f"24600{i:011d}", f"61200{i:011d}", f"9955{i:08d}")[channel - 1]


def _message(m: int, inbound: bool, rng: random.Random, big: bool) -> tuple[str, str | None, str, str, str, str | None,
                                                                         str | None]:
    """``(kind, text, payload, attachments, status, error_code, error_message)`` of message ``m``;
    the big thread gets every kind the thread renders, the others mostly text."""
    roll = rng.random() if big else rng.random() * 4
    if inbound:
        if roll < 0.08:
            return "image", None, "{}", json.dumps([{"type": "image", "url": f"https://cdn.fbsbx.com/v/{m}.jpg"}]), \
                "received", None, None
        if roll < 0.14:
            return "story_reply", rng.choice(TEXTS), json.dumps(
                {"story_id": str(m), "story_url": f"https://lookaside.fbsbx.com/story/{m}.jpg"}), "[]", "received", None, None
        if roll < 0.20:
            return "comment", rng.choice(TEXTS), json.dumps(
                {"comment_id": f"c{m}", "post_id": f"p{m % 97}", "permalink_url": f"https://www.instagram.com/p/{m % 97}/"}), \
                "[]", "received", None, None
        if roll < 0.26:
            return "postback", "Prices", json.dumps({"title": "Prices", "payload": "PRICES"}), "[]", "received", None, None
        return "text", rng.choice(TEXTS), "{}", "[]", "received", None, None
    if roll < 0.10:
        return "text", rng.choice(REPLIES), json.dumps({"meta": {"provider": "anthropic", "model": "claude-x", "passages": [
            {"title": "Shipping", "heading": "Georgia"}, {"title": "FAQ", "heading": "Prices"}]}}), "[]", "delivered", None, None
    if roll < 0.13:
        return "text", rng.choice(REPLIES), "{}", "[]", "failed", "10", "outside the allowed window"
    if roll < 0.20:
        return "text", "Pick one", json.dumps({"buttons": [{"title": "Rooms"}, {"title": "Prices"}]}), "[]", "read", None, None
    return "text", rng.choice(REPLIES), "{}", "[]", rng.choice(("sent", "delivered", "read")), None, None


def seed(data_dir: Path, contacts: int, messages: int) -> dict[str, Any]:
    """The workspace of step 1; returns counts, timings and the big conversation's id."""
    from appliance.store import connection
    from appliance.store.workspace import load_keys, migrate
    from appliance.team.credentials import hash_password

    started = time.perf_counter()
    settings = _settings(data_dir)
    _, key = load_keys(settings)
    migrate(settings, key)
    conn = connection.connect(settings.database_path, key)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    rng = random.Random(5)
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - messages * 900  # the newest message about now: the big thread's window is open
    now = _iso(now_ms)
    conn.execute("BEGIN")
    for type_, asset in (("messenger", PAGE_ID), ("instagram", IG_ID), ("whatsapp", WA_NUMBER_ID)):
        conn.execute("INSERT INTO channels (type, external_id, name, status, connected_at, created_at, updated_at) "
                     "VALUES (?, ?, ?, 'active', ?, ?, ?)", [type_, asset, f"Bench {type_}", now, now, now])
    password_hash = hash_password(PASSWORD)
    for email, name, role in USERS:
        conn.execute("INSERT INTO users (email, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                     [email, name, role, password_hash, now])
    conn.execute("COMMIT")

    # Which conversation each message belongs to: the big one (conversation 1) every
    # messages/BIG_THREAD rows, the others round-robin.
    # The messages' indexes are dropped for the bulk insert and rebuilt once after it (the same
    # CREATE INDEX statements, read back from sqlite_master): one sort instead of a million
    # random B-tree inserts.
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' "
                           "AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    stride = max(messages // BIG_THREAD, 1)
    last_at: dict[int, str] = {}
    last_in: dict[int, str] = {}
    others = max(contacts - 1, 1)
    k = 0
    for begin in range(0, messages, BATCH):
        rows = []
        for m in range(begin, min(begin + BATCH, messages)):
            big = m % stride == 0 and m // stride < BIG_THREAD
            if big:
                conversation = 1
            else:
                conversation = 2 + k % others
                k += 1
            inbound = rng.random() < 0.55
            at = _iso(start_ms + m * 900)
            kind, text, payload, attachments, status, code, reason = _message(m, inbound, rng, big)
            channel = (conversation - 1) % 3 + 1
            rows.append((conversation, conversation, channel, "in" if inbound else "out", kind, text, payload, attachments,
                         f"m_web_{m:010d}", status, code, reason, "contact" if inbound else "bot", at, at, at))
            last_at[conversation] = at
            if inbound:
                last_in[conversation] = at
        if begin == 0:
            _seed_people(conn, contacts, rng, now)
        conn.execute("BEGIN")
        conn.executemany("""INSERT INTO messages (conversation_id, contact_id, channel_id, direction, kind, text, payload,
                                attachments, external_id, status, error_code, error_message, sent_by, occurred_at,
                                created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)
        conn.execute("COMMIT")
    conn.execute("BEGIN")
    for _, sql in indexes:
        conn.execute(sql)
    conn.executemany("UPDATE conversations SET last_message_at = ? WHERE id = ?", [(v, c) for c, v in last_at.items()])
    conn.executemany("UPDATE contacts SET last_inbound_at = ? WHERE id = ?", [(v, c) for c, v in last_in.items()])
    conn.execute("UPDATE conversations SET status = 'open', assignee_id = 1, unread_count = 2 WHERE id = 1")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("contacts", "conversations", "messages")}
    open_n = conn.execute("SELECT count(*) FROM conversations WHERE status = 'open'").fetchone()[0]
    big = conn.execute("SELECT count(*) FROM messages WHERE conversation_id = 1").fetchone()[0]
    conn.close()
    return {**counts, "open_conversations": open_n, "big_thread_messages": big, "big_conversation": 1,
            "seconds": round(time.perf_counter() - started, 1),
            "database_mib": round(settings.database_path.stat().st_size / 2**20, 1)}


def _seed_people(conn: Any, contacts: int, rng: random.Random, now: str) -> None:
    people, conversations, tags = [], [], []
    for i in range(contacts):
        channel, external = _external(i)
        name = rng.choice(NAMES)
        people.append((channel, external, external if channel == 3 else None, f"{name} {i}", name.split()[0],
                       json.dumps({"city": rng.choice(("Tbilisi", "Batumi", "Kutaisi"))}), now, now))
        is_open = rng.random() < 0.3
        assignee = None
        if is_open:
            assignee = rng.choice((1, 2, None))
        conversations.append((i + 1, channel, "open" if is_open else "closed", assignee,
                              rng.choice((0, 0, 1, 3)) if is_open else 0, now, now))
        if i % 5 == 0:
            tags.append((i + 1, rng.choice(("vip", "wholesale", "returning")), now))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO contacts (channel_id, external_id, wa_id, name, first_name, fields, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", people)
    conn.executemany("INSERT INTO conversations (contact_id, channel_id, status, assignee_id, unread_count, created_at, "
                     "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", conversations)
    conn.executemany("INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (?, ?, ?)", tags)
    conn.execute("COMMIT")


# --- measuring ---------------------------------------------------------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection with a session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {**(headers or {}), **({"Cookie": self.cookie} if self.cookie else {})}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # uvicorn closes a keep-alive connection idle for 5 s (as between the sign-ins):
            # one new connection, then the same request.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def sign_in(self, email: str) -> str:
        body = urlencode({"email": email, "password": PASSWORD, "next": "/inbox"}).encode()
        status, headers, _ = self.request("POST", "/signin", body, {"Content-Type": "application/x-www-form-urlencoded"})
        match = re.search(r"aat-session=([^;]+)", headers.get("set-cookie", ""))
        if status != 303 or not match:
            raise BenchError(f"sign-in as {email} failed: {status}")
        self.cookie = f"aat-session={match.group(1)}"
        return self.cookie


def _access_log(log_path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    with open(log_path, "rb") as f:
        f.seek(offset)
        data = f.read()
    lines = []
    for line in data.splitlines():
        if b'"duration_ms"' not in line:
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines, offset + len(data)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)], 2) if ordered else 0.0


def measure(client: Client, server: Server, path: str, n: int, expect: bytes | None) -> dict[str, Any]:
    for _ in range(5):
        status, _, body = client.request("GET", path)
        if status != 200:
            raise BenchError(f"GET {path}: {status} {body[:200]!r}")
    time.sleep(0.3)
    _, offset = _access_log(server.log_path, 0)
    process = psutil.Process(server.proc.pid)
    cpu_before = sum(process.cpu_times()[:2])
    walls = []
    size = 0
    for _ in range(n):
        started = time.perf_counter()
        status, _, body = client.request("GET", path)
        walls.append((time.perf_counter() - started) * 1000)
        if status != 200 or (expect is not None and expect not in body):
            raise BenchError(f"GET {path}: {status}, expected {expect!r}")
        size = len(body)
    cpu_ms = (sum(process.cpu_times()[:2]) - cpu_before) * 1000 / n
    time.sleep(0.3)
    lines, _ = _access_log(server.log_path, offset)
    server_ms = [float(r["duration_ms"]) for r in lines if r.get("method") == "GET"][:n]
    if len(server_ms) != n:
        raise BenchError(f"GET {path}: {len(server_ms)} access-log lines for {n} requests")
    return {"path": path, "requests": n, "bytes": size,
            "server_p50_ms": _pct(server_ms, 0.5), "server_p95_ms": _pct(server_ms, 0.95),
            "server_max_ms": round(max(server_ms), 2), "server_cpu_ms_per_request": round(cpu_ms, 2),
            "wall_p50_ms": _pct(walls, 0.5), "wall_p95_ms": _pct(walls, 0.95)}


def _inbox_indexes(data_dir: Path, *, drop: bool = False, restore: list[tuple[str, str]] | None = None
                   ) -> list[tuple[str, str]]:
    """Drops migration 0012's list indexes (not its counts table) beside the running server (its connections re-prepare on
    the schema change), or puts them back."""
    from appliance.store import connection
    from appliance.store.workspace import load_keys

    _, key = load_keys(_settings(data_dir))
    conn = connection.connect(_settings(data_dir).database_path, key)
    try:
        found = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN "
                             "('conversations_inbox', 'conversations_inbox_assignee')").fetchall()
        conn.execute("BEGIN IMMEDIATE")
        if drop:
            for name, _ in found:
                conn.execute(f"DROP INDEX {name}")
        for _, sql in restore or []:
            conn.execute(sql)
        conn.execute("COMMIT")
        return [(name, sql) for name, sql in found]
    finally:
        conn.close()


# --- fan-out -----------------------------------------------------------------------------------------

async def _stream(port: int, cookie: str, seen: dict[str, list[float]], ready: asyncio.Event, counter: list[int],
                  total: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/v1/events?duration=600 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise BenchError(f"events stream: {status!r}")
    event = ""
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith(":") and "connected" in text:
                counter[0] += 1
                if counter[0] == total:
                    ready.set()
            elif text.startswith("event:"):
                event = text[6:].strip()
            elif text.startswith("data:") and event == "message.created":
                stamp = time.perf_counter()
                found = re.search(r"fanout-probe-(\d+)", text)
                if found:
                    seen.setdefault(found.group(1), []).append(stamp)
    finally:
        writer.close()


def _webhook(port: int, sender: str, n: int) -> bytes:
    at = int(time.time() * 1000)
    body = json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": at, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": PAGE_ID}, "timestamp": at,
        "message": {"mid": f"m_fanout_{n}_{at}", "text": f"fanout-probe-{n} is the room free?"}}]}]},
        separators=(",", ":")).encode()
    return body


async def fanout(port: int, cookies: list[str], sessions: int, rounds: int) -> dict[str, Any]:
    seen: dict[str, list[float]] = {}
    ready = asyncio.Event()
    counter = [0]
    tasks = [asyncio.create_task(_stream(port, cookies[i % len(cookies)], seen, ready, counter, sessions))
             for i in range(sessions)]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.5)
    results = []
    loop = asyncio.get_running_loop()
    for n in range(rounds):
        body = _webhook(port, _external(3 * (n + 10))[1], n)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET.encode())}

        def post(body: bytes = body, headers: dict[str, str] = headers) -> tuple[float, int]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            conn.request("POST", "/webhooks/meta", body=body, headers=headers)
            status = conn.getresponse().status
            conn.close()
            return started, status

        started, status = await loop.run_in_executor(None, post)
        if status != 200:
            raise BenchError(f"webhook: {status}")
        deadline = time.perf_counter() + 10
        while len(seen.get(str(n), [])) < sessions and time.perf_counter() < deadline:
            await asyncio.sleep(0.002)
        stamps = seen.get(str(n), [])
        if len(stamps) < sessions:
            raise BenchError(f"fan-out round {n}: {len(stamps)} of {sessions} sessions got the message in 10 s")
        results.append({"first_ms": round((min(stamps) - started) * 1000, 1),
                        "last_ms": round((max(stamps) - started) * 1000, 1),
                        "spread_ms": round((max(stamps) - min(stamps)) * 1000, 1)})
        await asyncio.sleep(0.4)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lasts = [r["last_ms"] for r in results]
    return {"sessions": sessions, "rounds": rounds,
            "webhook_to_first_median_ms": median([r["first_ms"] for r in results]),
            "webhook_to_last_median_ms": median(lasts), "webhook_to_last_p95_ms": _pct(lasts, 0.95),
            "webhook_to_last_max_ms": max(lasts),
            "spread_median_ms": median([r["spread_ms"] for r in results]),
            "spread_max_ms": max(r["spread_ms"] for r in results), "per_round": results}


# --- main --------------------------------------------------------------------------------------------

ENDPOINTS = [
    # (name, path, a byte string the response must contain, counts against the 50 ms target)
    ("inbox page, open view", "/inbox", b"conv-item", True),
    ("inbox page, mine view", "/inbox?view=mine", b"conv-item", True),
    ("inbox page, unassigned view", "/inbox?view=unassigned", b"conv-item", True),
    ("inbox page, closed + WhatsApp", "/inbox?view=closed&channel=whatsapp", b"conv-item", True),
    ("list fragment (live refresh)", "/inbox/fragments/list", b"conv-item", True),
    ("API conversations list", "/api/v1/conversations?status=open&limit=50", b'"items"', True),
    ("inbox page + 500-message thread", "/inbox?conversation=1", b'data-conversation-id="1"', True),
    ("thread fragment, 500 messages", "/inbox/fragments/thread/1", b'data-conversation-id="1"', True),
    ("API messages, 500", "/api/v1/conversations/1/messages?limit=500", b'"items"', True),
    ("contacts page", "/contacts", b"contacts-table", False),
    ("contacts search", "/contacts?q=Tamar", b"contacts-table", False),
    ("contacts by tag", "/contacts?tag=vip", b"contacts-table", False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--fanout-rounds", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--compare", action="store_true",
                        help="also measure the list endpoints without migration 0012's indexes")
    parser.add_argument("--data-dir", type=Path, help="reuse a seeded directory (from --keep)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    result: dict[str, Any] = {"benchmark": "web", "machine": machine(work), "code": code_version(),
                              "load_average_start": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        data_dir = args.data_dir or work / "data"
        if args.data_dir is None:
            print(f"seeding {args.contacts} contacts, {args.messages} messages ...", flush=True)
            result["seed"] = seed(data_dir, args.contacts, args.messages)
            print(f"  {result['seed']}", flush=True)
        env = appliance_env(master_key=MASTER_KEY, app_secret=APP_SECRET, log_level="info")
        port = free_port()
        server = Server("appliance", [str(VENV_BIN / "aat-appliance"), "serve", "--port", str(port),
                                      "--data-dir", str(data_dir)], env, port, work, work / "appliance.log")
        with running(server):
            server.start()
            result["ready_s"] = round(wait_ready(server), 2)
            client = Client(port)
            cookies = [client.sign_in(USERS[0][0])]
            for email, _, _ in USERS[1:]:
                cookies.append(Client(port).sign_in(email))
            rows = []
            for name, path, expect, target in ENDPOINTS:
                row = {"name": name, "target": target, **measure(client, server, path, args.requests, expect)}
                rows.append(row)
                print(f"  {name:34s} server p50 {row['server_p50_ms']:7.2f}  p95 {row['server_p95_ms']:7.2f}  "
                      f"max {row['server_max_ms']:7.2f}  cpu {row['server_cpu_ms_per_request']:6.2f} ms   wall p95 {row['wall_p95_ms']:7.2f} ms  "
                      f"({row['bytes']} bytes)", flush=True)
            result["pages"] = rows
            if args.compare:
                print("again without migration 0012's inbox indexes (dropped, then rebuilt) ...", flush=True)
                dropped = _inbox_indexes(data_dir, drop=True)
                try:
                    result["pages_without_inbox_indexes"] = [
                        {"name": name, **measure(client, server, path, max(args.requests // 4, 10), expect)}
                        for name, path, expect, target in ENDPOINTS if target and "thread" not in name
                        and "500" not in name]
                finally:
                    _inbox_indexes(data_dir, restore=dropped)
                for row in result["pages_without_inbox_indexes"]:
                    print(f"  {row['name']:34s} server p50 {row['server_p50_ms']:7.2f}  p95 {row['server_p95_ms']:7.2f} ms",
                          flush=True)
            print(f"fan-out to {args.sessions} sessions, {args.fanout_rounds} rounds ...", flush=True)
            result["fanout"] = asyncio.run(fanout(port, cookies, args.sessions, args.fanout_rounds))
            f = result["fanout"]
            print(f"  webhook -> last session: median {f['webhook_to_last_median_ms']} ms, "
                  f"p95 {f['webhook_to_last_p95_ms']} ms, max {f['webhook_to_last_max_ms']} ms; "
                  f"webhook -> first {f['webhook_to_first_median_ms']} ms; spread median {f['spread_median_ms']} ms",
                  flush=True)
        result["load_average_end"] = os.getloadavg()
        missed = [r["name"] for r in rows if r["target"] and r["server_p95_ms"] >= 50]
        result["targets"] = {"pages_p95_under_50ms": not missed, "missed": missed,
                             "fanout_under_200ms": result["fanout"]["webhook_to_last_p95_ms"] < 200}
        print(f"targets: {result['targets']}; load average {result['load_average_end']}", flush=True)
    finally:
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"web-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        print(f"results: {out}")
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
