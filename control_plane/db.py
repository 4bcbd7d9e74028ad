"""The control plane's encrypted store: ``DATA_DIR/control-plane.db`` (SQLCipher).

The appliance's store is reused, not copied: the same SQLCipher connection (errors translated
to ``sqlite3``), the same master key / wrapped data key files (``keys.json``), the same
group-committing :class:`~appliance.store.gateway.Gateway` and migration runner over
``migrations/control_plane/``. Tenants' secrets are additionally encrypted field by field
(:class:`~appliance.store.keys.FieldCipher`, bound to the tenant by associated data).

Layout of ``DATA_DIR``::

    control-plane.db (+ -wal, -shm)   SQLCipher, keyed by the data key
    keys.json                         the data key, wrapped by AAT_CP_MASTER_KEY
    master.key                        only in development, when no master key is configured
    tenants/<id>/                     local provisioner: each tenant's data dir and logs
    control-plane.lock                held by ``serve``
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import sqlite_utils
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import Conflict
from appliance.store import connection
from appliance.store.gateway import Gateway, wrap_database
from appliance.store.keys import DataKeyFile, FieldCipher, MasterKey, load_master_key
from appliance.store.migrate import apply_migrations
from control_plane.settings import ControlPlaneSettings

__all__ = ["Store", "open_store", "direct_database", "migrate", "MIGRATION_SET", "ServerLock"]

MIGRATION_SET = "control_plane"
DB_NAME = "control-plane.db"


@dataclass
class Store:
    master: MasterKey
    gateway: Gateway
    fields: FieldCipher
    user_key: bytes  # keys the HMAC of Meta user ids (known_users)

    def close(self) -> None:
        self.gateway.close()

    def user_hash(self, user_id: str) -> str:
        return hmac.new(self.user_key, user_id.encode(), hashlib.sha256).hexdigest()[:40]


def _keys(settings: ControlPlaneSettings) -> tuple[MasterKey, bytes]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    master = load_master_key(
        env_value=settings.master_key.get_secret_value() if settings.master_key else None,
        file_path=None, data_dir=settings.data_dir,
    )
    keyfile = DataKeyFile(settings.data_dir)
    if keyfile.exists():
        return master, keyfile.load(master)
    return master, keyfile.create(master)


def _user_key(master: MasterKey) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aat-cp-known-users/v1").derive(master.key)


def migrate(settings: ControlPlaneSettings) -> list[str]:
    _, data_key = _keys(settings)
    conn = connection.connect(settings.data_dir / DB_NAME, data_key)
    try:
        return apply_migrations(wrap_database(conn), MIGRATION_SET)
    finally:
        conn.close()


def open_store(settings: ControlPlaneSettings, *, readers: int = 2) -> Store:
    """Keys, migrations, then the gateway."""
    master, data_key = _keys(settings)
    path = settings.data_dir / DB_NAME
    conn = connection.connect(path, data_key)
    try:
        apply_migrations(wrap_database(conn), MIGRATION_SET)
    finally:
        conn.close()
    gateway = Gateway(lambda readonly: connection.connect(path, data_key, readonly=readonly),
                      readers=readers, name="control-plane")
    return Store(master=master, gateway=gateway, fields=master.field_cipher(), user_key=_user_key(master))


@contextlib.contextmanager
def direct_database(settings: ControlPlaneSettings) -> Iterator[tuple[sqlite_utils.Database, Store]]:
    """One writable connection for a CLI command, one transaction (committed on success); safe
    beside a running server. Yields the database and a :class:`Store` without a gateway."""
    migrate(settings)
    master, data_key = _keys(settings)
    conn = connection.connect(settings.data_dir / DB_NAME, data_key)
    store = Store(master=master, gateway=None, fields=master.field_cipher(), user_key=_user_key(master))  # type: ignore[arg-type]
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield wrap_database(conn), store
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


class ServerLock:
    """An advisory ``flock`` on ``DATA_DIR/control-plane.lock``: one ``serve`` per data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "control-plane.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise Conflict(f"another `aat-control-plane serve` holds {self.path}", code="control_plane_locked") from exc
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
