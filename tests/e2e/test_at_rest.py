"""DESIGN invariant 1, nothing readable at rest: a real server ingests messages, stores a
contact's name and phone number, keeps a channel token and sends a reply; then every file
under its data directory (the SQLCipher database, its WAL and shared-memory files, keys.json,
the task queue) is read as bytes and holds none of them, in any encoding, both while the
server runs (the WAL holds the recent pages) and after it stopped."""

from __future__ import annotations

import base64
import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import MASTER_KEY, MASTER_KEY_RAW, Appliances, json_dumps, wait_for
from tests.e2e.leaks import files_in, forms, scan_dir
from tests.e2e.payloads import messenger_body, messenger_text, whatsapp_body, whatsapp_text
from tests.standins.graph_api import GraphStandIn, RecordedRequest

PAGE_ID = "104000000000001"
PSID = "2460009990001112"
WABA_ID = "204000000000001"
PHONE_NUMBER_ID = "304000000000001"

PAGE_TOKEN = "EAAGe2eRestPageToken7Hq2Xv9Lk3Mz"
WHATSAPP_TOKEN = "EAAGe2eRestWabaToken4Pd8Nc1Rt6Vb"
MESSENGER_TEXT = "Ünïcödé café order №4471 ☕ rest-probe-messenger"
WHATSAPP_TEXT = "გამარჯობა, მაღაზია ღიაა? rest-probe-whatsapp 🍕"
CONTACT_NAME = "Tamar Qvelidze-Øster"
PHONE = "995577246801"
REPLY_TEXT = "Yes — we're open until 22:00 ✓ rest-reply-Kx81"
MESSENGER_REPLY_TEXT = "Ďakujeme, uvidíme sa! rest-reply-Messenger-Jw27"

NEEDLES = {
    "messenger text": MESSENGER_TEXT,
    "whatsapp text": WHATSAPP_TEXT,
    "contact name": CONTACT_NAME,
    "phone number": PHONE,
    "whatsapp reply": REPLY_TEXT,
    "messenger reply": MESSENGER_REPLY_TEXT,
    "page access token": PAGE_TOKEN,
    "whatsapp access token": WHATSAPP_TOKEN,
    "master key (base64)": MASTER_KEY,
}


@dataclass
class Observed:
    """What the module's one appliance run showed; each test checks one part of it."""

    data_dir: Path
    stored_texts: set[str]
    contact_names: set[str]
    graph_requests: list[RecordedRequest]
    files_running: list[str]
    wal_bytes_running: int
    leaks_running: dict[str, list[str]]
    files_stopped: list[str]
    wal_bytes_stopped: int
    leaks_stopped: dict[str, list[str]]


@pytest.fixture(scope="module")
def observed(module_appliances: Appliances, module_graph_api: GraphStandIn) -> Observed:
    """Store every needle and send both replies; scan the data directory while the server
    runs, stop it, scan again."""
    app = module_appliances(module_graph_api)
    app.connect_channel(type="messenger", external_id=PAGE_ID, access_token=PAGE_TOKEN)
    app.connect_channel(type="whatsapp", external_id=PHONE_NUMBER_ID, waba_id=WABA_ID,
                        access_token=WHATSAPP_TOKEN)
    # Meta's escaped form for one, raw UTF-8 for the other: both reach the journal.
    messenger = json_dumps(messenger_body(PAGE_ID, [messenger_text(PAGE_ID, PSID, "m_rest_1", MESSENGER_TEXT)]))
    whatsapp = json_dumps(
        whatsapp_body(WABA_ID, PHONE_NUMBER_ID, contacts=[(PHONE, CONTACT_NAME)],
                      messages=[whatsapp_text(PHONE, "wamid.REST1", WHATSAPP_TEXT)]),
        ascii_only=False,
    )
    for body in (messenger, whatsapp):
        assert app.post_webhook(body).status_code == 200
    app.wait_journal_settled()
    replies = [
        app.reply(app.conversation_of(PHONE), REPLY_TEXT),
        app.reply(app.conversation_of(PSID), MESSENGER_REPLY_TEXT),
    ]
    for reply in replies:
        wait_for(lambda r=reply: app.message(r["conversation_id"], r["id"])["status"] == "sent",
                 what="the reply to be sent")
    stored_texts = {m["text"] for m in app.all_messages()}
    contact_names = {c["contact"]["name"] for c in app.conversations()}
    files_running = files_in(app.data_dir)
    wal = app.data_dir / "workspace.db-wal"
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    leaks_running = scan_dir(app.data_dir, NEEDLES)
    app.stop()
    return Observed(
        data_dir=app.data_dir,
        stored_texts=stored_texts,
        contact_names=contact_names,
        graph_requests=list(module_graph_api.requests),
        files_running=files_running,
        wal_bytes_running=wal_bytes,
        leaks_running=leaks_running,
        files_stopped=files_in(app.data_dir),
        wal_bytes_stopped=wal.stat().st_size if wal.exists() else 0,
        leaks_stopped=scan_dir(app.data_dir, NEEDLES),
    )


def test_the_needles_really_reached_the_appliance_and_meta(observed: Observed) -> None:
    """The control: the values searched for did reach the appliance and Meta, so not finding
    them in the files means they are encrypted, not absent."""
    assert {MESSENGER_TEXT, WHATSAPP_TEXT, REPLY_TEXT, MESSENGER_REPLY_TEXT} <= observed.stored_texts
    assert CONTACT_NAME in observed.contact_names
    assert {"Bearer " + PAGE_TOKEN, "Bearer " + WHATSAPP_TOKEN} <= {
        r.headers["authorization"] for r in observed.graph_requests
    }
    assert any(r.json.get("to") == PHONE and r.json["text"]["body"] == REPLY_TEXT for r in observed.graph_requests)


def test_the_scan_covers_the_database_its_wal_the_keys_and_the_queue(observed: Observed) -> None:
    assert {"workspace.db", "workspace.db-wal", "workspace.db-shm", "keys.json", "queue.db"} <= set(
        observed.files_running
    )
    assert observed.wal_bytes_running > 0, "the WAL should hold the recent pages while the server runs"


def test_no_file_holds_a_secret_while_the_server_runs(observed: Observed) -> None:
    assert observed.leaks_running == {}


def test_no_file_holds_a_secret_after_a_clean_stop(observed: Observed) -> None:
    assert "workspace.db" in observed.files_stopped
    assert observed.leaks_stopped == {}


def test_the_raw_master_key_is_in_no_file(observed: Observed) -> None:
    for path in observed.data_dir.rglob("*"):
        if path.is_file():
            assert MASTER_KEY_RAW not in path.read_bytes(), path.name


def test_keys_json_holds_only_the_wrapped_data_key(observed: Observed) -> None:
    record = json.loads((observed.data_dir / "keys.json").read_text())
    assert set(record) == {"version", "algorithm", "created_at", "nonce", "wrapped"}
    assert record["algorithm"] == "AES-256-GCM"
    assert len(base64.b64decode(record["nonce"])) == 12
    # 32 bytes of key sealed with a 16-byte GCM tag: a wrapped value, not a raw one.
    assert len(base64.b64decode(record["wrapped"])) == 48


def test_the_data_dir_and_key_file_are_private(observed: Observed) -> None:
    assert stat.S_IMODE(observed.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((observed.data_dir / "keys.json").stat().st_mode) == 0o600


def test_a_clean_stop_leaves_the_whole_database_in_workspace_db(observed: Observed) -> None:
    """After a clean stop the database is one file (backups and moves are file copies):
    Gateway.close() checkpoints the WAL into workspace.db and truncates it."""
    assert observed.wal_bytes_stopped == 0


@pytest.mark.parametrize("form", ["utf-8", "json-escaped", "json-escaped-upper", "utf-16-le", "utf-16-be"])
def test_the_scan_finds_a_needle_written_in_any_form(tmp_path: Path, form: str) -> None:
    """The scanner itself: a plaintext copy in any of the forms would be reported."""
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "file.bin").write_bytes(b"\x00prefix" + forms(WHATSAPP_TEXT)[form] + b"suffix\x00")
    assert scan_dir(tmp_path, NEEDLES) == {"nested/file.bin": [f"whatsapp text as {form}"]}
