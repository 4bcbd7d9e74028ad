"""The baseline of ``bench/ingest.py``: a minimal durable webhook receiver on the appliance's stack.

What it does, and nothing more:

- ``POST /webhooks/meta``: read the raw body; check ``X-Hub-Signature-256`` (HMAC-SHA256 of
  those exact bytes with the app secret, constant-time comparison; 403 when it does not match);
  insert the raw body into an SQLCipher table and ``COMMIT``; answer ``200 EVENT_RECEIVED``.
  Each request is its own transaction (one commit, one WAL fsync per request). The blocking
  insert+commit runs off the event loop on a single-thread executor that owns the one
  connection, so commits are serialised the way a straightforward implementation serialises
  them; there is no batching of commits across requests.
- ``GET /readyz``: 200 once the database is open.

The stack is the appliance's: Litestar on uvicorn with the options ``aat-appliance serve`` passes
(``log_config=None, access_log=False, server_header=False, timeout_graceful_shutdown=15``, the
same default loop and HTTP parser), and ``sqlcipher3`` with the settings of
``appliance/store/connection.py``: a raw 32-byte key (no passphrase KDF), WAL,
``synchronous=FULL``, ``temp_store=MEMORY``, ``foreign_keys=ON``, a busy timeout. It does not
check that the body is JSON, count metrics, log requests or process events afterwards: those are
the appliance's extra work, and part of what the comparison measures.

Run: ``python bench/minimal_receiver.py --port 8100 --data-dir DIR`` with ``BENCH_DB_KEY`` (64 hex
digits) and ``BENCH_APP_SECRET`` in the environment. ``bench/ingest.py`` starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlcipher3
import uvicorn
from litestar import Litestar, Request, Response, get, post

DATABASE = "receiver.db"
SCHEMA = "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, body BLOB NOT NULL)"


def open_database(path: Path, key: bytes) -> Any:
    conn = sqlcipher3.connect(str(path), check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(SCHEMA)
    conn.commit()
    return conn


def create_app(data_dir: Path, key: bytes, secret: bytes) -> Litestar:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receiver-db")
    state: dict[str, Any] = {}

    def store(body: bytes) -> None:
        conn = state["conn"]
        conn.execute(
            "INSERT INTO events (received_at, body) VALUES (?, ?)",
            (datetime.now(UTC).isoformat(timespec="milliseconds"), body),
        )
        conn.commit()

    async def startup() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        state["conn"] = await loop.run_in_executor(executor, open_database, data_dir / DATABASE, key)

    async def shutdown() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, state["conn"].close)
        executor.shutdown(wait=True)

    @post("/webhooks/meta", status_code=200, media_type="text/plain")
    async def receive(request: Request[Any, Any, Any]) -> Response[str]:
        body = await request.body()
        header = request.headers.get("x-hub-signature-256") or ""
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header.encode(), expected.encode()):
            return Response("invalid signature", status_code=403, media_type="text/plain")
        await asyncio.get_running_loop().run_in_executor(executor, store, body)
        return Response("EVENT_RECEIVED", status_code=200, media_type="text/plain")

    @get("/readyz", sync_to_thread=False)
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return Litestar(
        route_handlers=[receive, readyz],
        on_startup=[startup],
        on_shutdown=[shutdown],
        request_max_body_size=1024 * 1024,
        debug=False,
        logging_config=None,
        openapi_config=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    key = bytes.fromhex(os.environ["BENCH_DB_KEY"])
    if len(key) != 32:
        raise SystemExit("BENCH_DB_KEY must be 64 hex digits (a raw 256-bit key)")
    secret = os.environ["BENCH_APP_SECRET"].encode()
    uvicorn.run(
        create_app(args.data_dir, key, secret),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=15,
    )


if __name__ == "__main__":
    main()
