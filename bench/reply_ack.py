"""CPU per webhook acknowledgement, in-process: the ``POST /webhooks/meta`` path alone.

Every reply starts with one delivery acknowledged on the event loop, and ``bench/reply.py``'s
CPU per reply moves by +-30% between rounds on a shared machine, more than a change to that
path is worth. This drives the app's ASGI callable directly (no socket, no HTTP parser, no
client in the process), with the journal processor switched off (rows stay ``pending``, as in
``_appliance_ingest_only.py``), and reports the process CPU per acknowledged delivery (event
loop + the writer thread's journal INSERT and commit) and the event-loop thread's share.

    .venv/bin/python bench/reply_ack.py [--requests 3000] [--commit REV ...]

With ``--commit``, each revision runs from a ``git archive`` snapshot in its own process,
alternating (A B A B ...) for ``--pairs`` rounds; without it, the working tree runs once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SECRET = "bench-app-secret"


def _delivery(n: int) -> bytes:
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1555", "phone_number_id": "109876"},
        "contacts": [{"profile": {"name": "Nino Beridze"}, "wa_id": f"99555{n:07d}"}],
        "messages": [{"from": f"99555{n:07d}", "id": f"wamid.ACK{n}", "timestamp": str(int(time.time())),
                      "type": "text", "text": {"body": "Hello, are you open on Sunday?"}}]}}]}]}
    return json.dumps(body, separators=(",", ":")).encode()


async def _measure(requests: int) -> dict[str, float]:
    from appliance.app import create_app
    from appliance.ingest.processor import JournalProcessor
    from appliance.settings import Settings
    from appliance.store.workspace import open_workspace

    async def _never(self: JournalProcessor) -> None:
        await asyncio.Event().wait()

    JournalProcessor.run = _never  # type: ignore[method-assign]
    data = Path(tempfile.mkdtemp(prefix="reply-ack-", dir=BENCH / "results"))
    settings = Settings(data_dir=data / "data", master_key=base64.b64encode(b"k" * 32).decode(),
                        meta_app_secret=SECRET, meta_verify_token="v")
    workspace = open_workspace(settings)
    app = create_app(settings, workspace=workspace, run_queue=False)
    bodies = [_delivery(n) for n in range(requests + 200)]
    signed = [(b, ("sha256=" + hmac.new(SECRET.encode(), b, hashlib.sha256).hexdigest()).encode()) for b in bodies]

    lifespan_in: asyncio.Queue[dict] = asyncio.Queue()
    lifespan_out: asyncio.Queue[dict] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   lifespan_in.get, lifespan_out.put))
    await lifespan_in.put({"type": "lifespan.startup"})
    assert (await lifespan_out.get())["type"] == "lifespan.startup.complete"

    async def post(body: bytes, sig: bytes) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/webhooks/meta", "raw_path": b"/webhooks/meta", "root_path": "",
                 "query_string": b"", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()), (b"x-hub-signature-256", sig)]}
        sent = False
        status = 0

        async def receive() -> dict:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    async def run(batch: list[tuple[bytes, bytes]]) -> None:
        # 32 in flight, as bench/reply.py's senders (the writer groups their commits)
        it = iter(batch)

        async def worker() -> None:
            for body, sig in it:
                if await post(body, sig) != 200:
                    raise SystemExit("a delivery was not acknowledged")
        await asyncio.gather(*(worker() for _ in range(32)))

    await run(signed[:200])  # warm-up
    wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    await run(signed[200:])
    loop_cpu = time.thread_time() - loop_cpu
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await lifespan_in.put({"type": "lifespan.shutdown"})
    await lifespan_out.get()
    task.cancel()
    workspace.close()
    shutil.rmtree(data, ignore_errors=True)
    return {"cpu_ms": 1000 * cpu / requests, "loop_ms": 1000 * loop_cpu / requests, "per_s": requests / wall}


def _snapshot(rev: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    target = BENCH / "results" / f"code-{sha}"
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", sha], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--commit", action="append", default=[], metavar="REV")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    (BENCH / "results").mkdir(exist_ok=True)
    if args.child or not args.commit:
        print(json.dumps(asyncio.run(_measure(args.requests))))
        return
    results: dict[str, list[dict[str, float]]] = {rev: [] for rev in args.commit}
    for _ in range(args.pairs):
        for rev in args.commit:
            env = {**os.environ, "PYTHONPATH": str(_snapshot(rev)), "AAT_LOG_LEVEL": "warning"}
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--requests",
                                  str(args.requests)], env=env, check=True, capture_output=True, text=True,
                                 cwd=tempfile.gettempdir()).stdout
            row = json.loads(out.strip().splitlines()[-1])
            results[rev].append(row)
            print(f"{rev:>10}  {row['cpu_ms']:.3f} CPU-ms per delivery (event loop {row['loop_ms']:.3f}), "
                  f"{row['per_s']:.0f}/s, load {load:.1f}", flush=True)
    for rev, rows in results.items():
        print(f"{rev:>10}  median {statistics.median(r['cpu_ms'] for r in rows):.3f} CPU-ms per delivery, "
              f"event loop {statistics.median(r['loop_ms'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
