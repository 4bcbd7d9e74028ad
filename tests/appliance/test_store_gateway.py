"""The gateway: one writer with group commit, readers beside it, futures resolved after COMMIT."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from appliance.errors import NotFound, ServiceUnavailable
from appliance.store import connection
from appliance.store.gateway import Gateway

KEY = bytes(range(32))


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    path = tmp_path / "g.db"
    conn = connection.connect(path, KEY)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT UNIQUE)")
    conn.commit()
    conn.close()
    gw = Gateway(lambda readonly: connection.connect(path, KEY, readonly=readonly), readers=2)
    yield gw
    gw.close()


def insert(db: sqlite_utils.Database, label: str) -> int:
    return int(db.execute("INSERT INTO items (label) VALUES (?)", [label]).lastrowid)


def count(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT count(*) FROM items").fetchone()[0]


async def test_write_then_read(gateway: Gateway) -> None:
    assert await gateway.write(insert, "a") == 1
    assert await gateway.read(count) == 1


async def test_concurrent_writes_share_commits_and_all_land(gateway: Gateway) -> None:
    ids = await asyncio.gather(*(gateway.write(insert, f"item {i}") for i in range(200)))
    assert sorted(ids) == list(range(1, 201))
    assert await gateway.read(count) == 200


@contextlib.asynccontextmanager
async def writer_held(gateway: Gateway) -> AsyncIterator[None]:
    """The writer busy with a job for the whole block: writes queued in it share the next batch."""
    started, release = threading.Event(), threading.Event()

    def hold(db: sqlite_utils.Database) -> None:
        started.set()
        release.wait(5)

    blocker = asyncio.ensure_future(gateway.write(hold))
    await asyncio.to_thread(started.wait, 5)
    try:
        yield
    finally:
        release.set()
        await blocker


async def test_one_batch_answers_callers_on_several_loops_and_threads(gateway: Gateway) -> None:
    # While the writer is held, callers on this loop, on another thread's loop and a plain
    # thread queue up: the next batch holds them all, and each gets its own answer.
    other: list[int] = []

    def other_loop() -> None:
        async def writes() -> list[int]:
            return list(await asyncio.gather(*(gateway.write(insert, f"other {i}") for i in range(20))))

        other.extend(asyncio.run(writes()))

    async with writer_held(gateway):
        thread = threading.Thread(target=other_loop)
        thread.start()
        mine = [asyncio.ensure_future(gateway.write(insert, f"mine {i}")) for i in range(20)]
        plain = gateway.submit_write(insert, "plain")
        await asyncio.sleep(0.2)
    ids = await asyncio.gather(*mine)
    await asyncio.to_thread(thread.join, 5)
    labels = await gateway.read(lambda db: dict(db.execute("SELECT id, label FROM items").fetchall()))
    assert [labels[i] for i in ids] == [f"mine {i}" for i in range(20)]
    assert [labels[i] for i in other] == [f"other {i}" for i in range(20)]
    assert labels[plain.result(5)] == "plain"


async def test_a_failing_job_rolls_back_alone(gateway: Gateway) -> None:
    def insert_then_fail(db: sqlite_utils.Database) -> None:
        insert(db, "half")
        raise NotFound("nothing here")

    results = await asyncio.gather(
        gateway.write(insert, "first"),
        gateway.write(insert_then_fail),
        gateway.write(insert, "first"),  # unique violation
        gateway.write(insert, "last"),
        return_exceptions=True,
    )
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], sqlite3.IntegrityError)
    labels = await gateway.read(lambda db: [r[0] for r in db.execute("SELECT label FROM items ORDER BY id")])
    assert labels == ["first", "last"]


async def _one_batch(gateway: Gateway, *jobs: tuple[Any, ...]) -> list[Any]:
    """Run ``jobs`` (function and arguments) in one batch: queued while the writer is held."""
    async with writer_held(gateway):
        queued = [asyncio.ensure_future(gateway.write(*job)) for job in jobs]
        await asyncio.sleep(0.05)
    return list(await asyncio.gather(*queued, return_exceptions=True))


async def test_a_batch_takes_savepoints_only_to_run_again_after_a_job_failed(gateway: Gateway) -> None:
    statements: list[str] = []
    runs: collections.Counter[str] = collections.Counter()

    def counted(db: sqlite_utils.Database, label: str) -> int:
        runs[label] += 1
        return insert(db, label)

    def failing(db: sqlite_utils.Database) -> None:
        runs["failing"] += 1
        insert(db, "half")
        raise NotFound("nothing here")

    gateway.write_sync(lambda db: db.conn.set_trace_callback(statements.append))
    try:
        assert len(await _one_batch(gateway, (counted, "a"), (counted, "b"))) == 2
        assert runs == {"a": 1, "b": 1}
        assert not [s for s in statements if "SAVEPOINT" in s]
        statements.clear()
        results = await _one_batch(gateway, (counted, "c"), (failing,), (counted, "d"))
        # The failure rolled the batch back (the job after it had not run yet); the batch ran
        # again with a savepoint per job, and only the failing job failed (its write undone,
        # the others' kept, once).
        assert isinstance(results[1], NotFound)
        assert runs == {"a": 1, "b": 1, "c": 2, "failing": 2, "d": 1}
        assert [s for s in statements if s.startswith(("SAVEPOINT", "ROLLBACK", "RELEASE"))] == [
            "ROLLBACK", "SAVEPOINT job_0", "RELEASE job_0", "SAVEPOINT job_1", "ROLLBACK TO job_1",
            "RELEASE job_1", "SAVEPOINT job_2", "RELEASE job_2"]
        with pytest.raises(NotFound):  # a lone job that fails is not run again
            await gateway.write(failing)
        assert runs["failing"] == 3
    finally:
        gateway.write_sync(lambda db: db.conn.set_trace_callback(None))
    labels = await gateway.read(lambda db: [r[0] for r in db.execute("SELECT label FROM items ORDER BY id")])
    assert labels == ["a", "b", "c", "d"]


async def test_cancelled_caller_does_not_break_the_writer(gateway: Gateway) -> None:
    started = threading.Event()
    release = threading.Event()

    def slow(db: sqlite_utils.Database) -> None:
        started.set()
        release.wait(5)

    blocker = asyncio.ensure_future(gateway.write(slow))
    await asyncio.to_thread(started.wait, 5)
    doomed = asyncio.ensure_future(gateway.write(insert, "never"))
    await asyncio.sleep(0)
    doomed.cancel()
    # The cancellation reaches the queued job through asyncio's future chaining, one loop turn
    # after the caller is cancelled: let it land before the writer is released.
    await asyncio.gather(doomed, return_exceptions=True)
    await asyncio.sleep(0)
    release.set()
    await blocker
    assert await gateway.write(insert, "after") >= 1
    labels = await gateway.read(lambda db: [r[0] for r in db.execute("SELECT label FROM items")])
    assert labels == ["after"]


def test_sync_writes_from_threads(gateway: Gateway) -> None:
    threads = [threading.Thread(target=gateway.write_sync, args=(insert, f"t{i}")) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gateway.read_sync(count) == 20


def test_closed_gateway_refuses_work(tmp_path: Path, gateway: Gateway) -> None:
    gateway.write_sync(insert, "x")
    gateway.close()
    with pytest.raises(ServiceUnavailable):
        gateway.write_sync(insert, "y")
    # everything acknowledged before close is on disk
    conn = connection.connect(tmp_path / "g.db", KEY, readonly=True)
    assert conn.execute("SELECT label FROM items").fetchall() == [("x",)]
    conn.close()


async def test_background_work_yields_to_foreground_but_is_not_starved(gateway: Gateway) -> None:
    order: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def slow(db: sqlite_utils.Database) -> None:
        started.set()
        release.wait(5)

    def note(db: sqlite_utils.Database, label: str) -> str:
        order.append(label)
        return label

    blocker = asyncio.ensure_future(gateway.write(slow))
    await asyncio.to_thread(started.wait, 5)
    background = asyncio.ensure_future(gateway.write_background(note, "background"))
    await asyncio.sleep(0.01)
    foreground = [asyncio.ensure_future(gateway.write(note, f"fg{i}")) for i in range(3)]
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(blocker, background, *foreground)
    assert order[:3] == ["fg0", "fg1", "fg2"] and order[3] == "background"
    # alone, background work runs at once
    assert await asyncio.wait_for(gateway.write_background(note, "alone"), 2) == "alone"
