"""``aat-appliance export-json`` and ``GET /api/v1/workspace/export`` (owner): the whole
workspace as one JSON document, for a customer taking their data elsewhere (portability) rather
than to another appliance. The API serves it to hosted customers, who have no shell.

::

    {"format": "aat-workspace-json/1", "exported_at": "...", "version": "...",
     "tables": {"channels": [{...row...}, ...], "contacts": [...], ...}}

Every table, one object per row, in primary-key order, read in one transaction (one consistent
moment, safe beside a running server) and written as it is read: memory stays flat however
large the workspace. Left out: secrets (columns ending ``_enc`` or ``_hash``, CSRF tokens; they
open nothing outside this appliance anyway), the full-text index (derived from the knowledge
base, which is included) and SQLite's own tables. A BLOB (the journal's raw webhook bodies) is
written as ``{"base64": "..."}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

from appliance import __version__
from appliance.errors import AatError
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.workspace import load_keys
from appliance.timeutil import iso_now

__all__ = ["FORMAT", "write_json", "chunks", "stream"]

FORMAT = "aat-workspace-json/1"
_SECRET_SUFFIXES = ("_enc", "_hash")
_SECRET_COLUMNS = frozenset({"csrf_token"})


def _tables(conn: Any) -> list[str]:
    virtual = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage = 0")]
    shadow = tuple(f"{v}_" for v in virtual)
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0 AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name") if not r[0].startswith(shadow)]


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def chunks(conn: Any, batch: int = 500) -> Iterator[str]:
    """The document, piece by piece; ``conn`` must be inside a read transaction."""
    yield json.dumps({"format": FORMAT, "exported_at": iso_now(), "version": __version__})[:-1]
    yield ', "tables": {'
    for index, table in enumerate(_tables(conn)):
        quoted = json.dumps(table)
        info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
        keep = [r[1] for r in info if not r[1].endswith(_SECRET_SUFFIXES) and r[1] not in _SECRET_COLUMNS]
        order = ", ".join(json.dumps(r[1]) for r in sorted((r for r in info if r[5]), key=lambda r: r[5])) or "rowid"
        columns = ", ".join(json.dumps(c) for c in keep)
        yield ("," if index else "") + f"\n{quoted}: ["
        cursor = conn.execute(f"SELECT {columns} FROM {quoted} ORDER BY {order}")
        first = True
        while rows := cursor.fetchmany(batch):
            parts = [json.dumps(dict(zip(keep, map(_cell, row), strict=True)), ensure_ascii=False) for row in rows]
            yield ("\n" if first else ",\n") + ",\n".join(parts)
            first = False
        yield "]"
    yield "\n}}\n"


def _open(settings: Settings) -> Any:
    if not settings.database_path.exists():
        raise AatError(f"there is no workspace in {settings.data_dir} (no {settings.database_path.name})",
                       code="no_workspace")
    _, data_key = load_keys(settings, allow_generate=False)
    return connection.connect(settings.database_path, data_key, readonly=True)


def _document(settings: Settings) -> Iterator[str]:
    """The document from a read connection of its own, closed when the iterator is."""
    conn = _open(settings)
    try:
        conn.execute("BEGIN")
        yield from chunks(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def stream(settings: Settings) -> AsyncIterator[str]:
    """The document for an HTTP response: each piece is read on a worker thread (one
    consistent snapshot, as ``write_json``); a client that goes away closes the connection."""
    pieces = _document(settings)
    try:
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece
    finally:
        await asyncio.to_thread(pieces.close)


def write_json(settings: Settings, out: IO[str]) -> dict[str, int]:
    """Write the document to ``out``; returns the rows written per table."""
    conn = _open(settings)
    try:
        conn.execute("BEGIN")
        counts = {t: int(conn.execute(f"SELECT count(*) FROM {json.dumps(t)}").fetchone()[0]) for t in _tables(conn)}
        for piece in chunks(conn):
            out.write(piece)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return counts
