"""Helpers for the privacy tests: exports opened the way any SQLCipher tool opens them, a search
through every column of every table, per-table digests, signed requests as Meta makes them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import sqlcipher3

from appliance.privacy.export import export_workspace
from appliance.privacy.signed_request import sign
from appliance.settings import Settings
from tests.conftest import APP_SECRET

PASSPHRASE = "correct horse battery staple"


def export_to(settings: Settings, directory: Path, name: str = "workspace.aatx",
              passphrase: str = PASSPHRASE) -> Path:
    out = directory / name
    export_workspace(settings, out, passphrase)
    return out


def open_export(path: Path, passphrase: str = PASSPHRASE) -> Any:
    """The file opened with SQLCipher's defaults and the passphrase, nothing else."""
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = '{passphrase}'")
    return conn


def tables(conn: Any, schema: str = "main") -> list[str]:
    """Every table that stores rows (FTS shadow tables included, virtual tables not)."""
    return [r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' AND rootpage > 0 ORDER BY name")]


def _needles(text: str) -> list[bytes]:
    """How ``text`` can be stored: UTF-8, and JSON-escaped as Meta writes raw bodies."""
    forms = {text.encode(), json.dumps(text).strip('"').encode(), json.dumps(text, ensure_ascii=False).strip('"').encode()}
    return sorted(forms)


def find_everywhere(conn: Any, texts: list[str], *, skip: tuple[str, ...] = ()) -> list[str]:
    """``table.column: text`` for every cell of every table that contains one of ``texts``."""
    hits = []
    for table in tables(conn):
        if table in skip:
            continue
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({json.dumps(table)})")]
        for column in columns:
            for text in texts:
                for needle in _needles(text):
                    found = conn.execute(
                        f"SELECT count(*) FROM {json.dumps(table)} "
                        f"WHERE instr(CAST({json.dumps(column)} AS BLOB), ?) > 0", [needle]).fetchone()[0]
                    if found:
                        hits.append(f"{table}.{column}: {text}")
    return sorted(set(hits))


def digests(conn: Any, schema: str = "main", *, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    """Table -> (row count, SHA-256 of its rows in a stable order)."""
    result = {}
    for table in tables(conn, schema):
        if table.startswith("sqlite_stat") or table in skip:
            continue
        quoted = f"{schema}.{json.dumps(table)}"
        width = len(conn.execute(f"SELECT * FROM {quoted} LIMIT 0").description)
        order = ", ".join(str(i + 1) for i in range(width))
        digest = hashlib.sha256()
        count = 0
        for row in conn.execute(f"SELECT * FROM {quoted} ORDER BY {order}"):
            digest.update(repr(row).encode())
            count += 1
        result[table] = (count, digest.hexdigest())
    return result


def signed_request(user_id: str, *, secret: str = APP_SECRET, **extra: Any) -> str:
    payload = {"algorithm": "HMAC-SHA256", "expires": 0, "issued_at": 1795721862, "user_id": user_id, **extra}
    return sign(payload, secret.encode())
