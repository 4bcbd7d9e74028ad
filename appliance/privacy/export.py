"""``aat-appliance export``: the whole workspace as one SQLCipher 4 file keyed by a passphrase.

The file is an ordinary SQLCipher 4 database with SQLCipher's default settings (PBKDF2-HMAC-
SHA512, 256,000 iterations, 4 KiB pages, HMAC per page): any SQLCipher tool opens it with
``PRAGMA key = '<passphrase>'``. It holds every table of the workspace (flow versions, the
audit log and the webhook journal included), plus two of its own:

- ``aat_export``: ``format``, ``exported_at``, ``version`` and ``tables`` (the row count of
  every table, which ``import`` checks);
- ``aat_export_files``: the files under ``DATA_DIR/media`` (empty while media live on Meta's
  CDN, as they do today).

**Consistency while the server keeps serving.** One connection of its own, with the export file
attached, opens a read transaction and copies everything with ``sqlcipher_export()`` inside it.
WAL gives that transaction one snapshot from its first read to its end, so the file is the
workspace as of one moment, while the server's writer keeps committing beside it (its commits
land in the WAL; checkpoints wait for the export to finish). Tokens stay encrypted with the
master key inside the file (DESIGN invariant 1): an export is not a way to read them.

Progress: the export file grows page by page as SQLite spills its cache, so its size against the
live pages of the source is the progress bar's measure. The same watcher flushes the file every
32 MiB, so the disk writes it steadily instead of all at once at the end.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.errors import AatError, Unprocessable
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.workspace import load_keys
from appliance.timeutil import iso_now

__all__ = [
    "FORMAT", "MANIFEST", "FILES", "MEDIA_DIR", "ExportResult", "export_workspace", "check_passphrase",
    "table_counts", "fsync_path",
]

FORMAT = "aat-workspace-export/1"
MANIFEST = "aat_export"
FILES = "aat_export_files"
MEDIA_DIR = "media"
MIN_PASSPHRASE = 8
FLUSH_BYTES = 32 * 2**20
_RAW_KEY = re.compile(r"^x'[0-9A-Fa-f]*'$")

Progress = Callable[[int, int], None]  # (bytes written, bytes expected)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    tables: dict[str, int]
    files: int
    size: int
    seconds: float


def check_passphrase(passphrase: str) -> str:
    """A usable passphrase, or an error saying why not (422: the admin API passes it on)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise Unprocessable(f"the passphrase must have at least {MIN_PASSPHRASE} characters", code="weak_passphrase")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in passphrase):
        raise Unprocessable("the passphrase must not contain control characters (newlines, tabs...)",
                            code="invalid_passphrase")
    if _RAW_KEY.match(passphrase):
        # SQLCipher would take x'...' as a raw key, not a passphrase: other tools would not open it.
        raise Unprocessable("the passphrase must not have the form x'...'", code="invalid_passphrase")
    return passphrase


def table_counts(conn: Any, schema: str = "main") -> dict[str, int]:
    """Rows per table (SQLite's own tables and virtual tables left out)."""
    names = [r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' AND rootpage > 0 "
        f"AND name NOT LIKE 'sqlite_%' AND name NOT IN ('{MANIFEST}', '{FILES}') ORDER BY name")]
    return {n: int(conn.execute(f"SELECT count(*) FROM {schema}.{json.dumps(n)}").fetchone()[0]) for n in names}


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _media_files(data_dir: Path) -> list[tuple[str, int, bytes]]:
    root = data_dir / MEDIA_DIR
    if not root.is_dir():
        return []
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        found.append((path.relative_to(root).as_posix(), path.stat().st_mode & 0o777, path.read_bytes()))
    return found


def _watch(path: Path, expected: int, progress: Progress | None, done: threading.Event) -> None:
    """Report the file's growth, and flush it to disk every ``FLUSH_BYTES`` on the way: one
    fsync of a whole export at the end would stall the server's own fsyncs (acknowledgements)
    for as long as the disk takes to write it."""
    flushed = 0
    fd = None
    try:
        while not done.wait(0.2):
            try:
                size = path.stat().st_size
                if fd is None:
                    fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            if size - flushed >= FLUSH_BYTES:
                os.fdatasync(fd)
                flushed = size
            if progress is not None:
                progress(min(size, expected - 1), expected)
    finally:
        if fd is not None:
            os.close(fd)


def _copy(conn: Any, partial: Path, settings: Settings, progress: Progress | None) -> tuple[dict[str, int], int]:
    """Inside one read transaction: the snapshot, the manifest, the media files."""
    conn.execute("BEGIN")
    counts = table_counts(conn)  # the first read: the snapshot starts here
    page_size = int(conn.execute("PRAGMA main.page_size").fetchone()[0])
    live_pages = int(conn.execute("PRAGMA main.page_count").fetchone()[0]) - int(
        conn.execute("PRAGMA main.freelist_count").fetchone()[0])
    expected = max(live_pages * page_size, 1)
    done = threading.Event()
    if progress is not None:
        progress(0, expected)
    watcher = threading.Thread(target=_watch, args=(partial, expected, progress, done), daemon=True)
    watcher.start()
    try:
        conn.execute("SELECT sqlcipher_export('export')").fetchall()
    finally:
        done.set()
        watcher.join()
    files = _media_files(settings.data_dir)
    conn.execute(f"CREATE TABLE export.{MANIFEST} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(f"CREATE TABLE export.{FILES} (path TEXT PRIMARY KEY, mode INTEGER NOT NULL, data BLOB NOT NULL)")
    conn.executemany(f"INSERT INTO export.{MANIFEST} (key, value) VALUES (?, ?)", [
        ("format", FORMAT), ("exported_at", iso_now()), ("version", __version__),
        ("tables", json.dumps(counts, sort_keys=True)), ("files", str(len(files))),
    ])
    conn.executemany(f"INSERT INTO export.{FILES} (path, mode, data) VALUES (?, ?, ?)", files)
    conn.execute("COMMIT")
    if progress is not None:
        progress(expected, expected)
    return counts, len(files)


def export_workspace(
    settings: Settings, out: Path, passphrase: str, *, progress: Progress | None = None
) -> ExportResult:
    """Write the workspace to ``out`` (which must not exist yet); safe beside a running server.

    The file is written as ``out.partial`` and renamed once complete and flushed, so ``out``
    never names half an export."""
    started = time.monotonic()
    check_passphrase(passphrase)
    if not settings.database_path.exists():
        raise AatError(f"there is no workspace in {settings.data_dir} (no {settings.database_path.name})",
                       code="no_workspace")
    if not out.parent.is_dir():
        raise AatError(f"the directory {out.parent} does not exist", code="no_directory")
    if out.exists():
        raise AatError(f"{out} exists already; choose a new file name", code="export_exists")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        raise AatError(f"{partial} exists (left by an interrupted export?); remove it first", code="export_exists")
    _, data_key = load_keys(settings, allow_generate=False)
    # Not query_only: the connection writes the attached export (and only that).
    conn = connection.connect(settings.database_path, data_key)
    try:
        conn.execute("ATTACH DATABASE ? AS export KEY ?", [str(partial), passphrase])
        # A failed export is deleted, never rolled back: no rollback journal; one fsync at the end.
        conn.execute("PRAGMA export.journal_mode = OFF").fetchall()
        conn.execute("PRAGMA export.synchronous = OFF")
        try:
            counts, files = _copy(conn, partial, settings, progress)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("DETACH DATABASE export")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    fsync_path(partial)
    os.replace(partial, out)
    fsync_path(out.parent)
    return ExportResult(out, counts, files, out.stat().st_size, time.monotonic() - started)
