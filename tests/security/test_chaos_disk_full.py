"""Chaos: the disk fills up under a running appliance (DESIGN invariant 2 at the edge).

A real ``aat-appliance serve`` runs on a data directory that is a small tmpfs. Deliveries are
acknowledged, then, with the server frozen (SIGSTOP) so that the processor still has events to
store, a filler file takes the last free byte. From then on a delivery that cannot
be committed is answered ``503 storage_unavailable`` with ``Retry-After`` (Meta retries it),
never a 500, and the server stays up; whatever got a 200 before or during the squeeze is kept.
Once space is freed the same deliveries are accepted again, and afterwards every acknowledged
event is in the inbox exactly once.

Below, the same contract one layer down (appliance/store/gateway.py), in-process on a 1 MiB
tmpfs: a write that meets the full disk, at COMMIT or in its own statement or file, fails as
``ServiceUnavailable("storage_unavailable")``, commits nothing, and the next write after space
is freed succeeds.

The tmpfs needs root. A user-namespace tmpfs was tried as the fallback and does not work:
outside the namespace it is reachable only as ``/proc/<holder pid>/root/<dir>``, and SQLite's
path canonicalisation reads that magic link as ``/`` and opens the database outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlite_utils

from appliance.errors import ServiceUnavailable
from appliance.store import connection
from appliance.store.gateway import Gateway
from tests.e2e.conftest import Appliance, Appliances, json_dumps
from tests.e2e.payloads import messenger_body, messenger_text
from tests.security.chaos_helpers import appliances_in, fill, tmpfs
from tests.standins.graph_api import GraphStandIn

PAGE_ID = "109000000000001"
PSIDS = [f"2460009990{i:06d}" for i in range(8)]
# The migrated workspace is ~460 KiB; the WAL grows to ~4 MiB before it is checkpointed.
TMPFS_KIB = 16384
BEFORE = 10           # small deliveries acknowledged while there is room
BIG = 2               # then big ones (200 events each), the disk filled right after their 200
BIG_EVENTS = 150
SQUEEZE = 30          # deliveries posted while the disk is full


def _delivery(tag: str, i: int, events: int = 1) -> tuple[bytes, list[str]]:
    mids = [f"m_full_{tag}_{i}_{j}" for j in range(events)]
    items = [messenger_text(PAGE_ID, PSIDS[j % len(PSIDS)], mid, f"disk {tag} {i}.{j} ✓")
             for j, mid in enumerate(mids)]
    return json_dumps(messenger_body(PAGE_ID, items)), mids


@dataclass
class Outcome:
    acked: list[str] = field(default_factory=list)
    refused: list[httpx.Response] = field(default_factory=list)
    other: list[httpx.Response] = field(default_factory=list)
    pending_while_full: float = -1.0
    alive_while_full: bool = False
    log_while_full: str = ""
    after_free: list[int] = field(default_factory=list)
    stored: Counter[str] = field(default_factory=Counter)
    journal_failed: float = -1.0


def _squeeze(app: Appliance, outcome: Outcome) -> None:
    for i in range(BEFORE):
        body, mids = _delivery("before", i)
        assert app.post_webhook(body).status_code == 200
        outcome.acked += mids
    app.wait_journal_settled()
    for i in range(BIG):
        body, mids = _delivery("big", i, BIG_EVENTS)
        assert app.post_webhook(body).status_code == 200
        outcome.acked += mids
    # The disk fills while the processor is still storing the big ones. Left running, a fast
    # machine had stored all of them before the filler was written; so the server is frozen the
    # moment the last one is acknowledged, the disk filled, and the server thawed.
    log_from = len(app.stderr_bytes())
    os.kill(app.pid, signal.SIGSTOP)
    try:
        filler = fill(app.data_dir)
    finally:
        os.kill(app.pid, signal.SIGCONT)
    outcome.pending_while_full = app.gauge("aat_journal_pending")
    for i in range(SQUEEZE):
        body, mids = _delivery("full", i)
        response = app.post_webhook(body)
        if response.status_code == 200:  # the WAL may still have a page to reuse
            outcome.acked += mids
        elif response.status_code == 503:
            outcome.refused.append(response)
        else:
            outcome.other.append(response)
    outcome.alive_while_full = app.running and app.api.get("/healthz").status_code == 200
    outcome.log_while_full = app.stderr_bytes()[log_from:].decode(errors="replace")
    filler.unlink()
    # Meta retries what was refused; the same bodies now go in.
    for i in range(SQUEEZE):
        body, mids = _delivery("full", i)
        if mids[0] in outcome.acked:
            continue
        response = app.post_webhook(body)
        outcome.after_free.append(response.status_code)
        if response.status_code == 200:
            outcome.acked += mids
    app.wait_journal_settled(timeout=60)
    outcome.journal_failed = app.gauge("aat_journal_failed")
    outcome.stored = Counter(m["external_id"] for m in app.all_messages())


@pytest.fixture(scope="module")
def squeezed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    graph = GraphStandIn().start()
    with appliances_in(tmp_path_factory.mktemp("disk_full")) as appliances:
        try:
            outcome = _run(appliances, graph)
        finally:
            graph.stop()
    yield outcome


def _run(appliances: Appliances, graph: GraphStandIn) -> Outcome:
    app = appliances(graph, start=False)
    template_copy = app.data_dir.with_name("data.template")
    app.data_dir.rename(template_copy)
    outcome = Outcome()
    with tmpfs(app.data_dir, size_kib=TMPFS_KIB):
        try:
            shutil.copytree(template_copy, app.data_dir, dirs_exist_ok=True)
            app.start()
            _squeeze(app, outcome)
            app.stop()
        finally:
            app.cleanup()  # SIGKILL if still running: nothing may hold the tmpfs
    return outcome


def test_a_full_disk_refuses_deliveries_with_503_and_retry_after(squeezed: Outcome) -> None:
    assert squeezed.refused, "the disk filled up but no delivery was refused"
    for response in squeezed.refused:
        assert response.json()["error"]["code"] == "storage_unavailable"
        assert "disk full" in response.json()["error"]["message"]
        assert int(response.headers["retry-after"]) > 0


def test_a_full_disk_causes_no_other_status(squeezed: Outcome) -> None:
    assert [(r.status_code, r.text) for r in squeezed.other] == []


def test_the_disk_filled_while_acknowledged_events_were_being_stored(squeezed: Outcome) -> None:
    """The precondition: the journal processor, too, met the full disk, with acknowledged events
    still to store (it logs the failure and keeps the row pending for a retry)."""
    lines = [json.loads(line) for line in squeezed.log_while_full.splitlines() if line.startswith("{")]
    assert {"logger": "aat.ingest", "event": "journal processing failed", "exc_type": "ServiceUnavailable"} in [
        {key: line.get(key) for key in ("logger", "event", "exc_type")} for line in lines], squeezed.log_while_full
    assert squeezed.pending_while_full >= 1


def test_the_server_stays_up_while_the_disk_is_full(squeezed: Outcome) -> None:
    assert squeezed.alive_while_full


def test_once_space_is_freed_every_retried_delivery_is_accepted(squeezed: Outcome) -> None:
    assert squeezed.after_free and set(squeezed.after_free) == {200}


def test_every_acknowledged_event_is_stored_exactly_once(squeezed: Outcome) -> None:
    assert len(squeezed.acked) == BEFORE + BIG * BIG_EVENTS + SQUEEZE
    assert squeezed.stored == Counter({mid: 1 for mid in squeezed.acked})
    assert squeezed.journal_failed == 0


# --- the gateway on a full disk, in-process ---------------------------------------------------

KEY = bytes(range(32))


@pytest.fixture
def full_gateway(tmp_path: Path) -> Iterator[tuple[Gateway, Path]]:
    """A gateway on a 1 MiB tmpfs whose last byte a filler file has taken."""
    with tmpfs(tmp_path / "small", size_kib=1024) as directory:
        path = directory / "g.db"
        conn = connection.connect(path, KEY)
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, body BLOB)")
        conn.commit()
        conn.close()
        gateway = Gateway(lambda readonly: connection.connect(path, KEY, readonly=readonly), readers=1)
        filler = fill(directory)
        try:
            yield gateway, filler
        finally:
            filler.unlink(missing_ok=True)
            gateway.close()


def _insert(db: sqlite_utils.Database, size: int) -> int:
    return int(db.execute("INSERT INTO items (body) VALUES (zeroblob(?))", [size]).lastrowid)


def _write_file(db: sqlite_utils.Database, path: Path) -> None:
    """A job that also writes a file of its own (the kind a disk-full job can meet first)."""
    path.write_bytes(b"x" * 65536)


def _count(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT count(*) FROM items").fetchone()[0])


@pytest.mark.parametrize("size", [10, 4_000_000], ids=["small-row", "row-larger-than-the-disk"])
async def test_a_write_on_a_full_disk_is_storage_unavailable_and_commits_nothing(
        full_gateway: tuple[Gateway, Path], size: int) -> None:
    gateway, _ = full_gateway
    with pytest.raises(ServiceUnavailable) as raised:
        await gateway.write(_insert, size)
    assert (raised.value.code, raised.value.retry_after) == ("storage_unavailable", 30)
    assert await gateway.read(_count) == 0


async def test_a_job_meeting_enospc_itself_is_storage_unavailable(full_gateway: tuple[Gateway, Path]) -> None:
    gateway, filler = full_gateway
    with pytest.raises(ServiceUnavailable) as raised:
        await gateway.write(_write_file, filler.with_name("attachment.bin"))
    assert raised.value.code == "storage_unavailable"
    assert isinstance(raised.value.__cause__, OSError)


async def test_the_gateway_takes_writes_again_once_space_is_freed(full_gateway: tuple[Gateway, Path]) -> None:
    gateway, filler = full_gateway
    with pytest.raises(ServiceUnavailable):
        await gateway.write(_insert, 10)
    filler.unlink()
    assert await gateway.write(_insert, 10) == 1
    assert await gateway.read(_count) == 1
