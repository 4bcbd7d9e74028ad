"""Workspace export while webhooks stream in, and import: how long, and what it costs ingest.

    .venv/bin/python bench/export.py [--messages 1000000] [--contacts 20000] [--slice 5]
                                     [--connections 8] [--rounds 2] [--keep]
                                     [--commit REV] [--source DIR]

1. **Build** a workspace of ``--messages`` messages (in and out, realistic texts and Meta ids)
   across ``--contacts`` contacts and conversations on three channels, plus 100,000 processed
   raw webhook bodies in the journal (about a week of traffic), written straight through the
   store's SQLCipher connection (not timed against anything; reported).
2. **Serve** it with ``aat-appliance serve`` and drive webhooks with wrk (pre-built, pre-signed,
   unique deliveries of ``bench/events.py`` from the same senders as the built contacts), in
   slices of ``--slice`` seconds, ``--rounds`` times: ``--between`` slices with no export, then
   slices back to back while ``aat-appliance export --passphrase-stdin`` runs beside the server
   (only slices wholly inside the export count), then ``--between`` slices again (also the next
   round's "before"). The journal is drained before each phase. Reported per round: the
   export's wall time, CPU time, file size and how far the WAL grew (checkpoints cannot pass
   the export's read snapshot); acknowledged req/s and p50/p99 during it, against the median of
   the slices before and after it.
3. **Export idle**: the same export with no load, for comparison.
4. **Import** the first file into an empty data directory (``aat-appliance import``), timed, and
   its message count checked against the file's.

Results: ``bench/results/export-<time>.json``. The work directory (a few GB) is deleted unless
``--keep``.

``--commit REV`` runs the appliance (and the build) from a ``git archive`` of that commit instead
of the working tree, which others may be editing during the run (a migration added mid-run makes
the export refuse the database). ``--source DIR`` reuses a data directory built by an earlier
run (same master key) instead of building again: building 1,000,000 messages takes minutes on a
shared machine. The directory is served and written to, not copied.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _support import (  # noqa: E402
    RESULTS_DIR,
    VENV_BIN,
    BenchError,
    Server,
    appliance_env,
    code_version,
    free_port,
    machine,
    median,
    missing_tool,
    require_module,
    running,
    wait_ready,
)
from events import INSTAGRAM_ID, PAGE_ID, PHONE_NUMBER_ID, _TEXTS, delivery, http_request  # noqa: E402
from ingest import LUA_SCRIPT, run_wrk, settle  # noqa: E402
from reply import snapshot  # noqa: E402

APP_SECRET = "bench-app-secret-0123456789abcdef"
MASTER_KEY = bytes(range(7, 39))
PASSPHRASE = "bench export passphrase 0123456789"
JOURNAL_ROWS = 100_000
NAMES = ["Nino", "Giorgi", "Ana Lima", "Tamar", "Luka", "Mariam", "David", "Salome", "Irakli", "Eka"]


def _settings(data_dir: Path) -> Any:
    from appliance.settings import Settings

    return Settings(data_dir=data_dir, master_key=base64.b64encode(MASTER_KEY).decode(), _env_file=None)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    from appliance.timeutil import to_iso

    return to_iso(datetime.fromtimestamp(ms / 1000, UTC))


def _contact_ids(i: int) -> tuple[int, str]:
    """Contact ``i``: its channel (1 Messenger, 2 Instagram, 3 WhatsApp) and the id Meta uses,
    the same ids bench/events.py sends from."""
    sender = i // 3
    channel = i % 3 + 1
    return channel, (f"24600{sender:011d}", f"61200{sender:011d}", f"9955{sender:08d}")[channel - 1]


def build(data_dir: Path, messages: int, contacts: int) -> dict[str, Any]:
    from appliance.store import connection
    from appliance.store.workspace import load_keys, migrate

    started = time.perf_counter()
    settings = _settings(data_dir)
    _, key = load_keys(settings)
    migrate(settings, key)
    conn = connection.connect(settings.database_path, key)
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(7)
    base_ms = 1_790_000_000_000
    now = _iso(base_ms)
    conn.execute("BEGIN")
    for type_, asset in (("messenger", PAGE_ID), ("instagram", INSTAGRAM_ID), ("whatsapp", PHONE_NUMBER_ID)):
        conn.execute("INSERT INTO channels (type, external_id, status, created_at, updated_at) "
                     "VALUES (?, ?, 'disconnected', ?, ?)", [type_, asset, now, now])
    people = []
    for i in range(contacts):
        channel, external = _contact_ids(i)
        name = rng.choice(NAMES)
        people.append((channel, external, external if channel == 3 else None, name, name.split()[0], now, now))
    conn.executemany("INSERT INTO contacts (channel_id, external_id, wa_id, name, first_name, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", people)
    conn.executemany("INSERT INTO conversations (contact_id, channel_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
                     [(i + 1, people[i][0], now, now) for i in range(contacts)])
    conn.execute("COMMIT")
    batch = 100_000
    for start in range(0, messages, batch):
        rows = []
        for m in range(start, min(start + batch, messages)):
            contact = m % contacts
            inbound = m % 2 == 0
            at = _iso(base_ms + m * 997)
            rows.append((contact + 1, contact + 1, people[contact][0], "in" if inbound else "out", "text",
                         rng.choice(_TEXTS) if inbound else f"Thanks {people[contact][4]}, we'll get back to you.",
                         f"m_hist_{m:010d}_{rng.getrandbits(64):016x}", "received" if inbound else "delivered",
                         "contact" if inbound else "bot", at, at, at))
        conn.execute("BEGIN")
        conn.executemany("""INSERT INTO messages (conversation_id, contact_id, channel_id, direction, kind, text,
                                external_id, status, sent_by, occurred_at, created_at, updated_at)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)
        conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.executemany("""INSERT INTO webhook_journal (received_at, body, state, processed_at, events)
                        VALUES (?, ?, 'processed', ?, 1)""",
                     ((now, delivery(seq, "hist", rng), now) for seq in range(JOURNAL_ROWS)))
    conn.execute("UPDATE conversations SET last_message_at = ?", [_iso(base_ms + messages * 997)])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.close()
    return {"messages": messages, "contacts": contacts, "journal_rows": JOURNAL_ROWS,
            "seconds": round(time.perf_counter() - started, 1),
            "database_mib": round(settings.database_path.stat().st_size / 2**20, 1)}


def _lua(raw: bytes) -> str:
    text = raw.decode("ascii")  # bodies are ASCII (Meta escapes the rest); the head too
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n") + '"'


def write_slices(directory: Path, names: list[str], per_slice: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    secret = APP_SECRET.encode()
    for name in names:
        rng = random.Random(name)
        lines = ["return {"]
        lines += [_lua(http_request(delivery(seq, f"{name}x", rng), secret)) + "," for seq in range(per_slice)]
        lines.append("}")
        (directory / f"{name}_t1.lua").write_text("\n".join(lines))


def _slice(server: Server, script: Path, name: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    result = run_wrk(server.port, script, name, args, args.slice)
    errors = result["errors"]
    if any(errors.values()):
        raise BenchError(f"slice {name}: wrk saw errors {errors}")
    seconds = result["duration_us"] / 1e6
    latency = result["latency_us"]
    return {"slice": name, "start": started, "end": time.monotonic(), "acked": result["requests"],
            "wrapped": result["wrapped"], "rps": round(result["requests"] / seconds, 1),
            "p50_ms": latency["p50"] / 1000, "p99_ms": latency["p99"] / 1000}


def _phase(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if not runs:
        return {"slices": 0}
    return {"slices": len(runs), "rps_median": median([r["rps"] for r in runs]),
            "p50_ms_median": median([r["p50_ms"] for r in runs]), "p99_ms_median": median([r["p99_ms"] for r in runs])}


class Export:
    """``aat-appliance export`` as a child process; its wall time and CPU time (``wait4``)."""

    def __init__(self, data_dir: Path, out: Path, env: dict[str, str], log: Path, cli: list[str]) -> None:
        with open(log, "ab") as sink:
            self.proc = subprocess.Popen(
                [*cli, "export", "--out", str(out), "--passphrase-stdin",
                 "--data-dir", str(data_dir)], env=env, stdin=subprocess.PIPE, stdout=sink, stderr=sink,
                cwd=out.parent)  # not the repository: ``python -m`` would import its working tree
        self.log = log
        self.started = time.monotonic()
        self.end = 0.0
        self.cpu_s = 0.0
        self.done = threading.Event()
        assert self.proc.stdin is not None
        self.proc.stdin.write(PASSPHRASE.encode())
        self.proc.stdin.close()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.end = time.monotonic()
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.done.set()

    def result(self) -> dict[str, Any]:
        self.done.wait()
        if self.proc.returncode != 0:
            raise BenchError(f"aat-appliance export failed; see {self.log}")
        return {"seconds": round(self.end - self.started, 1), "cpu_s": round(self.cpu_s, 1)}


def _watch_wal(path: Path, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.25):
        try:
            peak[0] = max(peak[0], path.stat().st_size)
        except FileNotFoundError:
            pass


def _export_under_load(server: Server, script: Path, args: argparse.Namespace, source: Path, work: Path,
                       env: dict[str, str], r: int, cli: list[str]) -> dict[str, Any]:
    stop, peak = threading.Event(), [0]
    threading.Thread(target=_watch_wal, args=(source / "workspace.db-wal", stop, peak), daemon=True).start()
    out = work / f"loaded{r}.aatx"
    export = Export(source, out, env, work / "export.log", cli)
    runs: list[dict[str, Any]] = []
    while not export.done.is_set() and len(runs) < args.max_during:
        runs.append(_slice(server, script, f"d{r}_{len(runs)}", args))
    loaded = export.result()
    stop.set()
    during = [x for x in runs if x["start"] >= export.started and x["end"] <= export.end]
    return {**loaded, "wal_peak_mib": round(peak[0] / 2**20, 1), "mib": round(out.stat().st_size / 2**20, 1),
            "during": _phase(during), "runs": runs}


def _count_messages(data_dir: Path) -> int:
    from appliance.store import connection
    from appliance.store.workspace import load_keys

    settings = _settings(data_dir)
    _, key = load_keys(settings, allow_generate=False)
    conn = connection.connect(settings.database_path, key, readonly=True)
    try:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="Export while ingesting; import.")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--slice", type=int, default=5, help="seconds per wrk slice (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="exports under load (default 2)")
    parser.add_argument("--between", type=int, default=3, help="slices before, between and after them (default 3)")
    parser.add_argument("--per-slice", type=int, default=4000, help="unique deliveries per slice file")
    parser.add_argument("--max-during", type=int, default=60, help="slice files prepared per export")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--commit", help="run the appliance from a git archive of this commit")
    parser.add_argument("--source", type=Path, help="reuse this built data directory instead of building")
    args = parser.parse_args()
    args.threads, args.timeout = 1, 10
    missing_tool("wrk", "apt-get install -y wrk")
    require_module("psutil", ".venv/bin/pip install -e '.[bench]'")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = RESULTS_DIR / f"export-work-{stamp}"
    source, target, lua_dir = work / "source", work / "target", work / "lua"
    work.mkdir(parents=True)
    env = appliance_env(master_key=MASTER_KEY, app_secret=APP_SECRET)
    cli = [str(VENV_BIN / "aat-appliance")]
    code = code_version()
    if args.commit:
        code_dir, code = snapshot(args.commit, work)
        env["PYTHONPATH"] = str(code_dir)  # ahead of the editable install's finder
        cli = [sys.executable, "-m", "appliance.cli"]
    result: dict[str, Any] = {"machine": machine(work), "code": code, "args": {**vars(args), "source": str(args.source)}}
    if args.source:
        source = args.source.resolve()
        result["build"] = {"reused": str(source), "messages": _count_messages(source),
                           "database_mib": round((source / "workspace.db").stat().st_size / 2**20, 1)}
        print(f"reusing {source}: {result['build']['messages']:,} messages", flush=True)
    else:
        print(f"building {args.messages:,} messages ...", flush=True)
        result["build"] = build(source, args.messages, args.contacts)
        print(f"  built in {result['build']['seconds']} s, {result['build']['database_mib']} MiB", flush=True)
    names = ["warm", *(f"b{r}_{i}" for r in range(args.rounds + 1) for i in range(args.between)),
             *(f"d{r}_{i}" for r in range(args.rounds) for i in range(args.max_during))]
    write_slices(lua_dir, names, args.per_slice)
    script = lua_dir / "replay.lua"
    script.write_text(LUA_SCRIPT.replace("@DATA_DIR@", str(lua_dir)))
    port = free_port()
    server = Server("appliance", [*cli, "serve", "--port", str(port),
                                  "--data-dir", str(source)], env, port, work, work / "appliance.log")
    between: list[list[dict[str, Any]]] = []
    rounds: list[dict[str, Any]] = []
    with running(server):
        server.start()
        result["ready_s"] = round(wait_ready(server), 2)
        _slice(server, script, "warm", args)
        for r in range(args.rounds + 1):
            settle("appliance", server)
            between.append([_slice(server, script, f"b{r}_{i}", args) for i in range(args.between)])
            if r == args.rounds:
                break
            settle("appliance", server)
            print(f"round {r + 1}: exporting while ingesting ...", flush=True)
            rounds.append(_export_under_load(server, script, args, source, work, env, r, cli))
        settle("appliance", server)
        print("exporting idle ...", flush=True)
        result["export_idle"] = Export(source, work / "idle.aatx", env, work / "export.log", cli).result()
    for r, item in enumerate(rounds):
        around = [_phase(between[r]), _phase(between[r + 1])]
        item["reference"] = {"rps": median([a["rps_median"] for a in around]),
                             "p99_ms": median([a["p99_ms_median"] for a in around])}
        item["rps_during_over_reference"] = round(item["during"].get("rps_median", 0) / item["reference"]["rps"], 3)
    result["between"] = [{"phase": _phase(b), "runs": b} for b in between]
    result["export_under_load"] = rounds
    started = time.monotonic()
    done = subprocess.run([*cli, "import", str(work / "loaded0.aatx"),
                           "--passphrase-stdin", "--data-dir", str(target)],
                          env=env, input=PASSPHRASE, capture_output=True, text=True, cwd=work)
    if done.returncode != 0:
        raise BenchError(f"aat-appliance import failed: {done.stderr.strip()}")
    result["import"] = {"seconds": round(time.monotonic() - started, 1), "messages": _count_messages(target),
                        "target_mib": round((target / "workspace.db").stat().st_size / 2**20, 1)}
    if result["import"]["messages"] < result["build"]["messages"]:
        raise BenchError(f"the import holds {result['import']['messages']} messages, fewer than built")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"export-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("build", "export_idle", "import")}, indent=2))
    for r, item in enumerate(rounds):
        print(f"round {r + 1}: export {item['seconds']} s ({item['mib']} MiB, CPU {item['cpu_s']} s, WAL peak "
              f"{item['wal_peak_mib']} MiB); ingest during {item['during']} vs {item['reference']}: "
              f"{item['rps_during_over_reference']}")
    print(f"result: {out}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
