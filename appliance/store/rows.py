"""Row helpers for store functions: query results as dicts without sqlite-utils' savepoint
wrapper around ``Database.query`` (which costs two extra statements per query on hot paths)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

__all__ = ["one", "many", "scalar"]


def many(db: Database, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def one(db: Database, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
    cursor = db.conn.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def scalar(db: Database, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
    row = db.conn.execute(sql, params).fetchone()
    return None if row is None else row[0]
