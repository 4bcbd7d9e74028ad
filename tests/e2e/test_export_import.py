"""``aat-appliance export`` beside a running server while webhooks stream in, then
``aat-appliance import`` into another appliance's empty data directory.

The export is one moment of the source: across tables, what one transaction wrote is either
all in the file or not at all (each delivery's journal row, message and conversation counters
agree), while deliveries kept being acknowledged during the export and after it. The imported
workspace has the same rows, table for table (row counts and content hashes), under its own data
key wrapped by its own master key, and serves them; deliveries that were acknowledged but not
yet processed at the moment of the export are processed by the importing appliance.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from appliance.store import connection
from appliance.store.keys import DataKeyFile, load_master_key
from tests.appliance.privacy_helpers import PASSPHRASE, digests, open_export
from tests.e2e.conftest import BIN, Appliances, json_dumps, signed, wait_for
from tests.e2e.payloads import messenger_body, messenger_text
from tests.standins.graph_api import GraphStandIn

PAGE_ID = "105000000000077"
PSIDS = [f"2460007770{i:06d}" for i in range(8)]
OTHER_MASTER_KEY_RAW = bytes(range(100, 132))
OTHER_MASTER_KEY = base64.b64encode(OTHER_MASTER_KEY_RAW).decode()


class Stream:
    """Signed Messenger deliveries, one message each, posted back to back from a thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.acked: list[float] = []
        self.failures: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
            n = 0
            while not self._stop.is_set():
                psid = PSIDS[n % len(PSIDS)]
                body = json_dumps(messenger_body(PAGE_ID, [messenger_text(PAGE_ID, psid, f"m_stream_{n}",
                                                                          f"stream message {n}")]))
                response = client.post("/webhooks/meta", content=body, headers=signed(body))
                if response.status_code == 200:
                    self.acked.append(time.monotonic())
                else:
                    self.failures.append(response.status_code)
                n += 1

    def start(self) -> Stream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.acked if start <= t <= end)


def _cli(*args: str, env: dict[str, str], stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def _snapshot_is_consistent(conn: Any) -> int:
    """Checks that only hold if every table is read at one moment; returns the message count."""
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    processed = conn.execute(
        "SELECT count(*) FROM webhook_journal WHERE state = 'processed' AND duplicates = 0").fetchone()[0]
    assert messages == processed  # each delivery: its journal row and its message, in one transaction
    unread = conn.execute("""SELECT cv.id, cv.unread_count, count(m.id) FROM conversations cv
                             LEFT JOIN messages m ON m.conversation_id = cv.id AND m.direction = 'in'
                             GROUP BY cv.id HAVING cv.unread_count != count(m.id)""").fetchall()
    assert unread == []  # counters and the messages they count agree
    return messages


def test_export_while_webhooks_stream_in_then_import_elsewhere(
    appliances: Appliances, graph_api: GraphStandIn, tmp_path: Path
) -> None:
    source = appliances(graph_api)
    source.connect_channel(type="messenger", external_id=PAGE_ID, access_token="EAAG-e2e-export")
    stream = Stream(source.base_url).start()
    wait_for(lambda: len(stream.acked) >= 200, timeout=60, what="200 acknowledged deliveries")

    out = tmp_path / "workspace.aatx"
    started = time.monotonic()
    exported = _cli("export", "--out", str(out), "--passphrase-stdin", "--data-dir", str(source.data_dir),
                    env=source.env, stdin=PASSPHRASE, cwd=source.root)
    finished = time.monotonic()
    wait_for(lambda: stream.acked_between(finished, time.monotonic()) >= 50, timeout=60,
             what="deliveries after the export")
    stream.stop()
    assert exported.returncode == 0, exported.stderr
    assert stream.failures == []
    assert stream.acked_between(started, finished) > 0, "deliveries were acknowledged during the export"
    source.wait_journal_settled(timeout=60)

    file = open_export(out)
    in_file = _snapshot_is_consistent(file)
    total = source.api.get("/api/v1/contacts").json()["items"]
    assert len(total) == len(PSIDS)
    source_messages = sum(len(source.messages(c["id"])) for c in source.conversations())
    assert 200 <= in_file < source_messages == len(stream.acked)

    # --- import into a second appliance, with another master key ------------------------------
    target = appliances(graph_api, start=False, AAT_MASTER_KEY=OTHER_MASTER_KEY)
    for path in sorted(target.data_dir.iterdir()):
        path.unlink()
    imported = _cli("import", str(out), "--passphrase-stdin", "--data-dir", str(target.data_dir),
                    env=target.env, stdin=PASSPHRASE + "\n", cwd=target.root)
    assert imported.returncode == 0, imported.stderr
    assert "1 channel token(s) were encrypted by another master key" in imported.stderr

    master = load_master_key(env_value=OTHER_MASTER_KEY, file_path=None, data_dir=target.data_dir)
    data_key = DataKeyFile(target.data_dir).load(master)
    restored = connection.connect(target.data_dir / "workspace.db", data_key, readonly=True)
    try:
        ours = digests(restored)
        theirs = digests(file, skip=("aat_export", "aat_export_files"))
        changed = ("audit_log", "sqlite_sequence")  # the import's own audit entry
        assert {t: d for t, d in ours.items() if t not in changed} == {
            t: d for t, d in theirs.items() if t not in changed}
        assert ours["audit_log"][0] == theirs["audit_log"][0] + 1
        assert restored.execute("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()[0] == (
            "workspace.import")
    finally:
        restored.close()

    # Deliveries acknowledged but not yet processed when the export was taken travel in its
    # journal; the importing appliance processes them when it starts.
    pending = file.execute("SELECT count(*) FROM webhook_journal WHERE state = 'pending'").fetchone()[0]
    target.start()
    target.wait_journal_settled(timeout=60)
    served = sum(len(target.messages(c["id"])) for c in target.conversations())
    assert served == in_file + pending
    texts = {m["text"] for c in target.conversations() for m in target.messages(c["id"])}
    assert "stream message 0" in texts
    target.stop()
    source.stop()
