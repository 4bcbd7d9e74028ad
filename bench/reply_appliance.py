"""reply.py's appliance side: start ``aat-appliance serve``, set it up, check what it stored.

``start_appliance`` makes an API token with ``aat-appliance tokens create`` on a fresh data
directory, starts ``serve`` against the Graph sink (``AAT_RATE_LIMIT_WHATSAPP``: see the caveats
in bench/README.md), connects the WhatsApp number and publishes ``FLOW`` through the public API.
``check_appliance`` opens the database with its key after the server stopped: every inbound
message and reply stored and sent, outbox and journal empty, the file encrypted; ``breakdown``
splits each reply's time into stages from the stored timestamps. ``snapshot`` extracts a commit
for ``--commit``.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from _support import (
    REPO,
    VENV_BIN,
    BenchError,
    Server,
    appliance_env,
    free_port,
    wait_ready,
)
from graph_sink import GraphSink
from reply_load import ACCESS_TOKEN, APP_SECRET, FLOW, PHONE_NUMBER_IDS, WABA_ID, Load
from reply_report import distribution

__all__ = ["RATE_LIMIT_WHATSAPP", "breakdown", "check_appliance", "snapshot", "start_appliance"]

RATE_LIMIT_WHATSAPP = 1000


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
    """Connect the WhatsApp numbers and publish the flow, through the public API."""
    channels = [_api(port, token, "POST", "/api/v1/channels", {
        "type": "whatsapp", "external_id": number, "access_token": ACCESS_TOKEN, "waba_id": WABA_ID,
    }) for number in PHONE_NUMBER_IDS]
    flow = _api(port, token, "POST", "/api/v1/flows", FLOW)
    published = _api(port, token, "POST", f"/api/v1/flows/{flow['id']}/publish")
    if published.get("warnings"):
        raise BenchError(f"publishing the flow gave warnings: {published['warnings']}")
    return {"channel_ids": [c["id"] for c in channels], "flow_id": flow["id"], "flow_version": published["version"]}



def _appliance_cli(code: Path | None) -> list[str]:
    """``aat-appliance``, or the same CLI run from a snapshot of a commit (see ``--commit``)."""
    return [str(VENV_BIN / "aat-appliance")] if code is None else [sys.executable, "-m", "appliance.cli"]


def start_appliance(work: Path, tag: str, sink: GraphSink, master_key: bytes,
                    code: Path | None = None) -> tuple[Server, Path, dict[str, Any]]:
    """Start the appliance on a fresh data directory and set it up (blocking: call through
    ``asyncio.to_thread``); returns the server, its data directory and what was set up."""
    port = free_port()
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
    server = Server("appliance", argv, env, port, work, work / f"appliance-{tag}.log")
    server.start()
    wait_ready(server)
    return server, data_dir, setup_appliance(port, token)


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


def check_appliance(data_dir: Path, master_key: bytes, expected: int, load: Load,
                    arrivals: dict[int, float]) -> dict[str, Any]:
    """After the server stopped: open the database with its key; every inbound message and every
    reply must be stored, the outbox and the journal empty. Then ``breakdown``."""
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
        stages = breakdown(conn, load, arrivals)
    finally:
        conn.close()
    with open(path, "rb") as handle:
        counts["encrypted_at_rest"] = handle.read(16) != b"SQLite format 3\x00"
    counts["ok"] = (counts["inbound_messages"] == expected and counts["replies_sent"] == expected
                    and counts["replies_not_sent"] == 0 and counts["outbox_left"] == 0
                    and counts["journal_not_processed"] == 0 and counts["encrypted_at_rest"])
    return {**counts, "breakdown_ms": stages}


def breakdown(conn: Any, load: Load, arrivals: dict[int, float]) -> dict[str, Any]:
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
    return {name: distribution(values) for name, values in stages.items() if values}


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

