"""``aat-appliance import``: an export file (``appliance.privacy.export``) restored into an
empty data directory, as this appliance's own workspace.

1. Refuse a data directory that holds anything but a development ``master.key``.
2. Open the file read-only with the passphrase and verify it: every page's HMAC
   (``cipher_integrity_check``: no page was altered), SQLite's ``quick_check`` (b-trees, records
   and constraints sound), the ``aat_export`` manifest (format, and each table's row count
   against the count taken at export), and its migrations (a file from a newer version, with
   migrations this code does not know, is refused). Not ``integrity_check``: what it adds is
   that every index matches its table, and step 3 never reads the file's indexes (
   ``sqlcipher_export`` copies each table with ``INSERT ... SELECT *`` and builds the indexes
   anew), while on 1,000,000 messages it took three times as long as ``quick_check``.
3. Copy it (``sqlcipher_export``) into ``workspace.db.import`` under a new random data key,
   drop the manifest tables, restore ``media/``, rename it to ``workspace.db``, apply the
   migrations this version adds, record the import in the audit log.
4. Only then write ``keys.json``: the data key wrapped by this appliance's master key. An
   interrupted import leaves a database without ``keys.json``, which refuses to open (never an
   empty workspace in its place); delete the directory and import again.

Tokens and secrets inside stay encrypted by the master key of the appliance that exported them
(field encryption): with the same master key (the control plane moving a tenant, a restore)
they work as before; with another, they cannot be opened and the channels and integrations must
be connected again. The result counts the channel tokens this appliance cannot open.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlcipher3

from appliance import audit
from appliance.connections.store import token_context
from appliance.errors import AatError, Conflict
from appliance.privacy.export import FILES, FORMAT, MANIFEST, MEDIA_DIR, fsync_path, table_counts
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.gateway import wrap_database
from appliance.store.keys import KeyMaterialError, MasterKey, load_master_key
from appliance.store.migrate import migration_files
from appliance.store.workspace import MIGRATION_SET, migrate
from appliance.timeutil import iso_now

__all__ = ["ImportResult", "check_empty", "verify", "import_workspace"]

_MAY_EXIST = frozenset({"master.key", "appliance.lock", "lost+found"})


@dataclass(slots=True)
class ImportResult:
    tables: dict[str, int]
    exported_at: str
    files: int = 0
    migrations_applied: list[str] = field(default_factory=list)
    tokens_sealed_elsewhere: int = 0


def check_empty(data_dir: Path) -> None:
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise AatError(f"{data_dir} is not a directory", code="not_empty")
    found = sorted(p.name for p in data_dir.iterdir() if p.name not in _MAY_EXIST)
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise Conflict(f"the data directory {data_dir} is not empty ({shown}): import restores into an "
                       "empty directory only", code="not_empty")


def _open(source: Path, passphrase: str) -> Any:
    if not source.is_file():
        raise AatError(f"{source} does not exist or is not a file", code="no_export")
    conn = sqlcipher3.connect(":memory:", uri=True, factory=connection.CipherConnection, check_same_thread=False)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute("ATTACH DATABASE ? AS src KEY ?", [f"file:{quote(str(source.resolve()))}?mode=ro", passphrase])
        conn.execute("SELECT count(*) FROM src.sqlite_master").fetchone()
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise AatError(f"the passphrase does not open {source}, or it is not an AAT workspace export",
                           code="wrong_passphrase") from exc
        raise
    return conn


def verify(conn: Any, source: Path) -> dict[str, Any]:
    """Check the attached ``src``; returns its manifest."""
    damaged = f"{source} is damaged or was altered"
    if conn.execute("PRAGMA src.cipher_integrity_check").fetchall():
        raise AatError(f"{damaged}: pages fail their HMAC check", code="damaged_export")
    checked = [r[0] for r in conn.execute("PRAGMA src.quick_check").fetchall()]
    if checked != ["ok"]:
        raise AatError(f"{damaged}: {checked[0]}", code="damaged_export")
    try:
        manifest = dict(conn.execute(f"SELECT key, value FROM src.{MANIFEST}").fetchall())
    except sqlite3.OperationalError as exc:
        raise AatError(f"{source} is an SQLCipher database but not an AAT workspace export", code="not_an_export") from exc
    if manifest.get("format") != FORMAT:
        raise AatError(f"{source} has format {manifest.get('format')!r}; this version reads {FORMAT!r}",
                       code="unknown_format")
    known = {name for name, _ in migration_files(MIGRATION_SET)}
    applied = {r[0] for r in conn.execute(
        "SELECT name FROM src._sqlite_migrations WHERE migration_set = ?", [MIGRATION_SET])}
    newer = sorted(applied - known)
    if newer:
        raise AatError(f"{source} comes from a newer version (migrations {', '.join(newer)}): upgrade first",
                       code="newer_export")
    expected = json.loads(manifest.get("tables", "{}"))
    actual = table_counts(conn, "src")
    for table in sorted(set(expected) | set(actual)):
        if expected.get(table) != actual.get(table):
            raise AatError(f"{damaged}: table {table} has {actual.get(table, 0)} rows, the export recorded "
                           f"{expected.get(table, 0)}", code="damaged_export")
    return {**manifest, "tables": expected}


def _restore_files(conn: Any, data_dir: Path) -> int:
    root = (data_dir / MEDIA_DIR).resolve()
    count = 0
    for path, mode, data in conn.execute(f"SELECT path, mode, data FROM src.{FILES} ORDER BY path"):
        target = (root / path).resolve()
        if not target.is_relative_to(root) or target == root:
            raise AatError(f"the export names a file outside media/ ({path!r}); refusing it", code="damaged_export")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o700 or 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        count += 1
    return count


def _master(settings: Settings) -> MasterKey:
    return load_master_key(
        env_value=settings.master_key.get_secret_value() if settings.master_key else None,
        file_path=settings.master_key_file, data_dir=settings.data_dir,
    )


def _write_keys(data_dir: Path, master: MasterKey, data_key: bytes) -> None:
    """``keys.json`` in the format of ``appliance.store.keys.DataKeyFile``, atomically."""
    record = {"version": 1, "algorithm": "AES-256-GCM", "created_at": iso_now()[:19] + "Z", **master.wrap(data_key)}
    tmp = data_dir / "keys.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, data_dir / "keys.json")
    fsync_path(data_dir)


def _sealed_elsewhere(conn: Any, master: MasterKey) -> int:
    cipher = master.field_cipher()
    failed = 0
    for type_, external_id, token in conn.execute(
            "SELECT type, external_id, access_token_enc FROM channels WHERE access_token_enc IS NOT NULL"):
        try:
            cipher.decrypt(token, token_context(type_, external_id))
        except (KeyMaterialError, ValueError):  # sealed by another key, or not a sealed value at all
            failed += 1
    return failed


def import_workspace(settings: Settings, source: Path, passphrase: str, actor: audit.Actor) -> ImportResult:
    """Restore ``source`` into ``settings.data_dir`` (see the module docstring). The caller
    holds the data directory's process lock."""
    data_dir = settings.data_dir
    check_empty(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    master = _master(settings)
    conn = _open(source, passphrase)
    staging = data_dir / "workspace.db.import"
    data_key = secrets.token_bytes(32)
    try:
        manifest = verify(conn, source)
        result = ImportResult(tables=manifest["tables"], exported_at=manifest.get("exported_at", ""))
        conn.execute("ATTACH DATABASE ? AS ws KEY ?", [str(staging), f"x'{data_key.hex()}'"])
        conn.execute("PRAGMA ws.journal_mode = OFF").fetchall()
        conn.execute("PRAGMA ws.synchronous = OFF")
        conn.execute("BEGIN")
        conn.execute("SELECT sqlcipher_export('ws', 'src')").fetchall()
        conn.execute(f"DROP TABLE ws.{MANIFEST}")
        conn.execute(f"DROP TABLE ws.{FILES}")
        conn.execute("COMMIT")
        result.files = _restore_files(conn, data_dir)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    fsync_path(staging)
    os.replace(staging, settings.database_path)
    fsync_path(data_dir)
    result.migrations_applied = migrate(settings, data_key)
    ws = connection.connect(settings.database_path, data_key)
    try:
        result.tokens_sealed_elsewhere = _sealed_elsewhere(ws, master)
        ws.execute("BEGIN IMMEDIATE")
        audit.record(wrap_database(ws), actor, "workspace.import",
                     details={"exported_at": result.exported_at, "tables": len(result.tables)})
        ws.execute("COMMIT")
        ws.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        ws.close()
    _write_keys(data_dir, master, data_key)
    return result
