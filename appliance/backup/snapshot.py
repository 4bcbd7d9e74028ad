"""``aat-appliance backup``: a consistent, encrypted snapshot of the live workspace as one tar file.

A backup ``aat-backup-<UTC time>.tar`` holds:

- ``workspace.db``: a copy of the SQLCipher database, encrypted with the workspace's own data
  key (so it is as unreadable as the live file);
- ``keys.json``: that data key, wrapped by the master key, as in ``DATA_DIR``. **The master key
  is never in a backup**: restoring needs the same ``AAT_MASTER_KEY`` (keep it elsewhere);
- ``media/...``: the files under ``DATA_DIR/media``;
- ``manifest.json``: format, time, appliance version, the migrations applied, the row count of
  every table and the SHA-256 of every file (``verify`` checks all of them). No content.

**Consistency while serving**: as in ``appliance/privacy/export.py``, one connection of its own
attaches the new file (keyed with the same raw data key) and runs ``sqlcipher_export()`` inside
one read transaction; WAL gives that transaction one snapshot while the server keeps writing.
The tar is written as ``.partial`` and renamed once flushed, so a listed backup is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance import __version__
from appliance.errors import AatError
from appliance.privacy.export import fsync_path, table_counts
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.workspace import MIGRATION_SET, load_keys

__all__ = [
    "FORMAT", "BackupError", "BackupResult", "create_backup", "list_backups", "prune", "backup_time",
    "applied_migrations",
]

FORMAT = "aat-backup/1"
_NAME = re.compile(r"^aat-backup-(\d{8}T\d{6}\d{3}Z)\.tar$")


class BackupError(AatError):
    """A backup cannot be made, read, verified or restored; the message says why."""

    default_code = "backup_error"


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    tables: dict[str, int]
    files: int
    size: int
    seconds: float


def backup_time(path: Path) -> datetime | None:
    """When a backup was taken, from its name; ``None`` for a file that is not a backup."""
    match = _NAME.match(path.name)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def list_backups(directory: Path) -> list[Path]:
    """The complete backups in ``directory``, oldest first (names sort by time)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and backup_time(p) is not None)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups (and partial files left by a crash); returns
    what was deleted."""
    if keep < 1:
        raise BackupError("keep at least one backup")
    removed = list_backups(directory)[:-keep]
    removed += [p for p in directory.glob("aat-backup-*.tar.partial") if p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def applied_migrations(conn: object) -> list[str]:
    """Names of the appliance migrations recorded in a database, in order."""
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY name", [MIGRATION_SET]
    ).fetchall()
    return [r[0] for r in rows]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _snapshot(settings: Settings, data_key: bytes, target: Path) -> tuple[dict[str, int], list[str]]:
    """Copy the database into ``target`` (same key) inside one read transaction."""
    conn = connection.connect(settings.database_path, data_key)
    try:
        conn.execute("ATTACH DATABASE ? AS backup KEY ?", [str(target), f"x'{data_key.hex()}'"])
        conn.execute("PRAGMA backup.journal_mode = OFF").fetchall()
        conn.execute("PRAGMA backup.synchronous = OFF")
        try:
            conn.execute("BEGIN")
            counts = table_counts(conn)  # the first read: the snapshot starts here
            migrations = applied_migrations(conn)
            conn.execute("SELECT sqlcipher_export('backup')").fetchall()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("DETACH DATABASE backup")
    finally:
        conn.close()
    return counts, migrations


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def create_backup(settings: Settings, directory: Path, *, now: datetime | None = None) -> BackupResult:
    """Write one backup of the workspace into ``directory`` (created if missing, mode 0700).

    Safe beside a running server. Raises :class:`BackupError` when there is no workspace."""
    started = time.monotonic()
    if not settings.database_path.exists():
        raise BackupError(f"there is no workspace in {settings.data_dir} (no {settings.database_path.name})",
                          code="no_workspace")
    _, data_key = load_keys(settings, allow_generate=False)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    name = f"aat-backup-{moment.strftime('%Y%m%dT%H%M%S')}{moment.microsecond // 1000:03d}Z.tar"
    out = directory / name
    if out.exists():
        raise BackupError(f"{out} exists already", code="backup_exists")
    partial = out.with_name(out.name + ".partial")
    media_root = settings.data_dir / "media"
    with tempfile.TemporaryDirectory(prefix=".aat-backup-", dir=directory) as tmp:
        db_copy = Path(tmp) / "workspace.db"
        counts, migrations = _snapshot(settings, data_key, db_copy)
        keys = (settings.data_dir / "keys.json").read_bytes()
        media = sorted(p for p in media_root.rglob("*") if p.is_file() and not p.is_symlink()) if media_root.is_dir() else []
        files = {"workspace.db": _sha256(db_copy), "keys.json": hashlib.sha256(keys).hexdigest()}
        files |= {f"media/{p.relative_to(media_root).as_posix()}": _sha256(p) for p in media}
        manifest = {
            "format": FORMAT, "created_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "version": __version__,
            "migrations": migrations, "tables": counts, "files": files,
        }
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
                _add_bytes(tar, "keys.json", keys)
                tar.add(db_copy, arcname="workspace.db")
                for path in media:
                    tar.add(path, arcname=f"media/{path.relative_to(media_root).as_posix()}")
            fsync_path(partial)
            os.replace(partial, out)
            fsync_path(directory)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return BackupResult(out, counts, len(media), out.stat().st_size, time.monotonic() - started)


def copy_tree_files(source: Path, target: Path) -> None:
    """Copy every file under ``source`` into ``target`` (mode 0700 directories)."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(path, dest)
