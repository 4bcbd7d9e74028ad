"""The async gateway to one SQLCipher database: one writer thread, a few reader threads.

Store functions are small synchronous functions taking a ``sqlite_utils.Database``
(``def insert_message(db, msg) -> int``). The gateway runs them off the event loop:

- ``await gateway.read(fn, *args)`` on one of N reader connections (``query_only``). WAL lets
  readers run while the writer writes; each statement sees the latest committed state.
- ``await gateway.write(fn, *args)`` on the single writer connection. The writer drains every
  job waiting in its queue into one ``BEGIN IMMEDIATE`` transaction, runs them one after
  another and commits once: group commit, so many small writes share one fsync. A failing job
  rolls back alone and gets its exception: when a job of a batch raises, the whole transaction
  is rolled back and the batch runs again with each job in its own savepoint. Savepoints are
  not taken on the way that succeeds because they are dear: each copies every page its job
  changes (a third of the writer's CPU per bot reply, BENCHMARKS.md). A job's future resolves
  only after COMMIT, so "the write returned" means "the write is durable". The awaiting coroutines of one batch
  are resumed by one callback per event loop (one wake-up of the loop, not one per job); a
  job whose caller was cancelled before the writer took it is not run.
- ``read_sync`` / ``write_sync`` do the same from other threads (queue workers, CLI).
- ``await gateway.write_background(fn, *args)`` is for work that may wait (replaying the
  webhook journal): a batch takes a background job only when no foreground job is waiting, or
  when the oldest background job has waited ``BACKGROUND_MAX_WAIT`` seconds. Acknowledging a
  webhook is a foreground write and never queues behind a burst of processing.

A write function must not call the gateway itself (it would wait for its own thread). It may
run twice, with the same arguments, when another job of its batch fails (only the second run's
writes and result count), so its effects must stay inside the database it is given.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlite_utils

from appliance.errors import ServiceUnavailable
from appliance.store.savepoint import savepoint

__all__ = ["Gateway", "wrap_database"]


def _disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL, or ENOSPC from a file the job wrote itself: the caller should retry
    later (503), not see an internal error. A statement that hits a full disk can fail alone
    and leave the transaction open, so this is checked per job as well as at COMMIT."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC

T = TypeVar("T")
log = logging.getLogger("aat.store")

_MAX_BATCH = 256
BACKGROUND_MAX_WAIT = 0.25


def wrap_database(conn: Any) -> sqlite_utils.Database:
    return sqlite_utils.Database(conn, execute_plugins=False)


class _LoopOutcome:
    """A job's outcome for a coroutine awaiting it on ``loop``. The writer thread records the
    outcome (the same calls it makes on a ``concurrent.futures.Future``); :func:`_settle`
    hands a batch's outcomes to their loops, one callback per loop."""

    __slots__ = ("loop", "future", "ok", "value")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.ok: bool | None = None
        self.value: Any = None

    def set_running_or_notify_cancel(self) -> bool:
        return not self.future.cancelled()  # a caller cancelled before the writer took it

    def set_result(self, value: Any) -> None:
        self.ok, self.value = True, value

    def set_exception(self, exc: BaseException) -> None:
        self.ok, self.value = False, exc

    def done(self) -> bool:
        return self.ok is not None


def _resolve(outcomes: list[_LoopOutcome]) -> None:
    """On the loop: every outcome to its future (a caller cancelled meanwhile drops it)."""
    for outcome in outcomes:
        future = outcome.future
        if future.cancelled():
            continue
        if outcome.ok:
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome.value)


def _settle(batch: list[_Job]) -> None:
    """Hand the batch's recorded loop outcomes to their loops (on the writer thread)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_LoopOutcome]] = {}
    for job in batch:
        outcome = job.future
        if isinstance(outcome, _LoopOutcome) and outcome.ok is not None:
            by_loop.setdefault(outcome.loop, []).append(outcome)
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, outcomes)
        except RuntimeError:  # that loop has closed: nobody is waiting any more
            pass


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future[Any] | _LoopOutcome = field(default_factory=Future)
    queued_at: float = 0.0


_STOP = object()
_WAKE = object()  # a background job arrived
_RUN_APART = object()  # a job of the batch failed: run it again, each job in a savepoint
_FAILED = object()  # every job's future has its error


class Gateway:
    """Owns the connections of one database; see the module docstring for the contract."""

    def __init__(
        self,
        open_connection: Callable[[bool], Any],
        *,
        readers: int = 3,
        name: str = "workspace",
    ) -> None:
        self._open = open_connection
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._background: collections.deque[_Job] = collections.deque()
        self._local = threading.local()
        self._reader_conns: list[Any] = []
        self._reader_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix=f"{name}-reader"
        )
        self._writer_db = wrap_database(open_connection(False))
        self._writer = threading.Thread(
            target=self._write_loop, name=f"{name}-writer", daemon=True
        )
        self._closed = False
        # Called on the writer thread after every successful COMMIT (must be quick and
        # thread-safe: the live-updates hub's wake-up).
        self.on_commit: list[Callable[[], None]] = []
        self._writer.start()

    # --- reads ------------------------------------------------------------------------------
    def _reader_db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = self._open(True)
            with self._reader_lock:
                self._reader_conns.append(conn)
            db = self._local.db = wrap_database(conn)
        return db

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        return fn(self._reader_db(), *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn, args, kwargs)

    def read_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._check_open()
        return self._readers.submit(self._run_read, fn, args, kwargs).result()

    # --- writes -----------------------------------------------------------------------------
    def submit_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        self._check_open()
        future: Future[T] = Future()
        self._jobs.put(_Job(fn, args, kwargs, future))
        return future

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._check_open()
        outcome = _LoopOutcome(asyncio.get_running_loop())
        self._jobs.put(_Job(fn, args, kwargs, outcome))
        return await outcome.future  # type: ignore[no-any-return]

    async def write_background(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A write that yields to foreground writes (see the module docstring)."""
        self._check_open()
        outcome = _LoopOutcome(asyncio.get_running_loop())
        self._background.append(_Job(fn, args, kwargs, outcome, queued_at=time.monotonic()))
        self._jobs.put(_WAKE)
        return await outcome.future  # type: ignore[no-any-return]

    def write_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.submit_write(fn, *args, **kwargs).result()

    def _write_loop(self) -> None:
        while True:
            if self._background:
                try:
                    first = self._jobs.get_nowait()  # background work waits: do not block
                except queue.Empty:
                    first = _WAKE
            else:
                first = self._jobs.get()
            if first is _STOP:
                self._drain_background()
                return
            batch: list[_Job] = [] if first is _WAKE else [first]
            stop_after = False
            while len(batch) < _MAX_BATCH:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                if nxt is not _WAKE:
                    batch.append(nxt)
            if self._background and (
                not batch or time.monotonic() - self._background[0].queued_at >= BACKGROUND_MAX_WAIT
            ):
                batch.append(self._background.popleft())
            if batch:
                self._run_batch(batch)
            if stop_after:
                self._drain_background()
                return

    def _drain_background(self) -> None:
        while self._background:
            self._run_batch([self._background.popleft()])

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            committed = self._run_jobs(batch)
        finally:
            _settle(batch)
        if committed:
            for callback in self.on_commit:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - a listener must never stop the writer
                    log.exception("commit listener failed")

    def _run_jobs(self, batch: list[_Job]) -> bool:
        """The batch in one transaction; True once it committed (the outcomes are recorded
        either way). The jobs run together first; only if one fails, again each in its own
        savepoint (see the module docstring)."""
        conn = self._writer_db.conn
        if not self._begin(batch):
            return False
        batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not batch:
            conn.execute("ROLLBACK")
            return False
        outcomes = self._run_together(batch)
        if outcomes is _RUN_APART:
            if not self._begin(batch):
                return False
            outcomes = self._run_apart(batch)
        if outcomes is _FAILED:
            return False
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._fail_all(batch, exc)
            return False
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        return True

    def _begin(self, batch: list[_Job]) -> bool:
        try:
            self._writer_db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail_all(batch, exc)
            return False
        return True

    def _run_together(self, batch: list[_Job]) -> Any:
        """Every job with no savepoint: their outcomes, or ``_RUN_APART`` when one raised (the
        transaction is rolled back), or ``_FAILED`` (every future has its error). A lone job's
        error is its own: it fails at once, with nothing to run again."""
        db = self._writer_db
        conn = db.conn
        outcomes: list[tuple[bool, Any]] = []
        for job in batch:
            try:
                outcomes.append((True, job.fn(db, *job.args, **job.kwargs)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                if not conn.in_transaction:
                    # The error ended the whole transaction (disk full, I/O error): every job
                    # in the batch fails, as it would have with savepoints.
                    self._fail_all(batch, exc)
                    return _FAILED
                conn.execute("ROLLBACK")
                if len(batch) > 1:
                    return _RUN_APART
                job.future.set_exception(self._unavailable(exc) if _disk_full(exc) else exc)
                return _FAILED
        return outcomes

    def _run_apart(self, batch: list[_Job]) -> Any:
        """Every job in a savepoint of its own, so that a failing one rolls back alone: the
        outcomes, or ``_FAILED`` when an error ended the whole transaction."""
        db = self._writer_db
        conn = db.conn
        outcomes: list[tuple[bool, Any]] = []
        for index, job in enumerate(batch):
            try:
                with savepoint(db, f"job_{index}"):  # rolled back to on an error
                    result = job.fn(db, *job.args, **job.kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                if not conn.in_transaction:
                    self._fail_all(batch, exc)
                    return _FAILED
                outcomes.append((False, self._unavailable(exc) if _disk_full(exc) else exc))
                continue
            outcomes.append((True, result))
        return outcomes

    def _fail_all(self, batch: list[_Job], exc: BaseException) -> None:
        conn = self._writer_db.conn
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        log.error(
            "database write failed",
            extra={"database": self._name, "error": type(exc).__name__, "jobs": len(batch)},
        )
        failure = self._unavailable(exc)
        for job in batch:
            if not job.future.done():
                job.future.set_exception(failure)

    @staticmethod
    def _unavailable(exc: BaseException) -> ServiceUnavailable:
        failure = ServiceUnavailable(
            "the database cannot take writes right now (disk full or I/O error); retry later",
            code="storage_unavailable",
        )
        failure.__cause__ = exc
        return failure

    # --- lifecycle --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailable("the database is closed", code="storage_closed")

    def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        self._writer.join()
        self._readers.shutdown(wait=True)
        try:
            self._writer_db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self._writer_db.conn.close()
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
