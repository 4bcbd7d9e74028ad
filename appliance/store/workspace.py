"""Opening a workspace: keys, the process lock, migrations, the gateway; and key rotation.

Layout of ``DATA_DIR``::

    workspace.db (+ -wal, -shm)   SQLCipher, keyed by the data key
    keys.json                     the data key, wrapped by the master key (AES-256-GCM)
    keys.json.next                only during ``rekey``
    master.key                    only in development, when no master key is configured
    queue.db                      huey's task queue: ids and times, never content
    appliance.lock                held by ``serve`` so ``rekey``/``migrate`` cannot run under it
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import IO

import sqlite_utils

from appliance.errors import AatError, Conflict
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.gateway import Gateway, wrap_database
from appliance.store.keys import (
    DataKeyFile,
    FieldCipher,
    KeyMaterialError,
    MasterKey,
    load_master_key,
)
from appliance.store.migrate import apply_migrations, pending_migrations

__all__ = ["Workspace", "ProcessLock", "open_workspace", "load_keys", "rekey", "migrate", "direct_database"]

log = logging.getLogger("aat.store")
MIGRATION_SET = "appliance"


class ProcessLock:
    """An advisory ``flock`` on ``DATA_DIR/appliance.lock``, released when the process dies."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "appliance.lock"
        self._fh: IO[str] | None = None

    def acquire(self, purpose: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise Conflict(
                f"another process holds {self.path} (is `aat-appliance serve` running?); "
                f"stop it before {purpose}",
                code="workspace_locked",
            ) from exc
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


@dataclass
class Workspace:
    """An open workspace; ``close()`` it (the lifespan does)."""

    settings: Settings
    master: MasterKey
    gateway: Gateway
    fields: FieldCipher

    def close(self) -> None:
        self.gateway.close()


def _prepare_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


def load_keys(settings: Settings, *, allow_generate: bool = True) -> tuple[MasterKey, bytes]:
    """The master key and the data key, finishing (or undoing) an interrupted rotation."""
    _prepare_dir(settings.data_dir)
    master = load_master_key(
        env_value=settings.master_key.get_secret_value() if settings.master_key else None,
        file_path=settings.master_key_file,
        data_dir=settings.data_dir,
        allow_generate=allow_generate,
    )
    keyfile = DataKeyFile(settings.data_dir)
    db_path = settings.database_path
    if not keyfile.exists():
        if db_path.exists():
            raise KeyMaterialError(
                f"{db_path} exists but keys.json is missing: the workspace cannot be opened"
            )
        return master, keyfile.create(master)
    current = keyfile.load(master)
    staged = keyfile.pending_rotation(master)
    if staged is not None:
        # A rekey was interrupted: whichever key opens the database is the current one.
        if _opens(db_path, current):
            keyfile.discard_next()
        elif _opens(db_path, staged):
            keyfile.commit_next()
            current = staged
        else:
            raise KeyMaterialError("neither the current nor the staged data key opens the database")
    return master, current


def _opens(db_path: Path, key: bytes) -> bool:
    if not db_path.exists():
        return True
    try:
        connection.connect(db_path, key, readonly=True).close()
    except connection.WrongKey:
        return False
    return True


def migrate(settings: Settings, data_key: bytes) -> list[str]:
    """Apply pending migrations on a connection of its own; returns what was applied."""
    conn = connection.connect(settings.database_path, data_key)
    try:
        db = wrap_database(conn)
        applied = apply_migrations(db, MIGRATION_SET)
    finally:
        conn.close()
    for name in applied:
        log.info("migration applied", extra={"migration": name})
    return applied


def open_workspace(settings: Settings, *, readers: int = 3, run_migrations: bool = True) -> Workspace:
    master, data_key = load_keys(settings)
    if run_migrations:
        migrate(settings, data_key)
    else:
        conn = connection.connect(settings.database_path, data_key, readonly=True)
        try:
            pending = pending_migrations(wrap_database(conn), MIGRATION_SET)
        finally:
            conn.close()
        if pending:
            raise AatError(f"the database needs migrations first: {', '.join(pending)}")
    path = settings.database_path
    gateway = Gateway(
        lambda readonly: connection.connect(path, data_key, readonly=readonly), readers=readers
    )
    return Workspace(settings=settings, master=master, gateway=gateway, fields=master.field_cipher())


def rekey(settings: Settings) -> None:
    """Rotate the data key: stage the new wrapped key, re-encrypt, then make it current."""
    master, current = load_keys(settings, allow_generate=False)
    keyfile = DataKeyFile(settings.data_dir)
    new_key = keyfile.stage_next(master)
    conn = connection.connect(settings.database_path, current)
    try:
        conn.execute(connection.rekey_pragma(new_key)).fetchall()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    keyfile.commit_next()
    log.info("data key rotated")


@contextlib.contextmanager
def direct_database(settings: Settings) -> Iterator[sqlite_utils.Database]:
    """One writable connection for a CLI command, inside one transaction (committed on success).

    Safe beside a running server (SQLite locks; the busy timeout waits). With no server running
    it first applies pending migrations (so `users create` works on a fresh data directory);
    beside a running server, which migrated at start, it refuses an unmigrated schema.
    """
    _, data_key = load_keys(settings)
    lock = ProcessLock(settings.data_dir)
    try:
        lock.acquire("migrating")
    except Conflict:
        pass  # a server holds the lock: it applied the migrations when it started
    else:
        try:
            migrate(settings, data_key)
        finally:
            lock.release()
    conn = connection.connect(settings.database_path, data_key)
    try:
        db = wrap_database(conn)
        pending = pending_migrations(db, MIGRATION_SET)
        if pending:
            raise AatError(
                f"the database needs migrations first ({', '.join(pending)}): run `aat-appliance migrate`"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()
