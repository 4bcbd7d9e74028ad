"""A savepoint under a fixed name: what ``db.atomic()`` does inside a transaction, without
flushing the connection's statement cache.

``sqlite_utils.Database.atomic`` names each savepoint ``sqlite_utils_<secrets.token_hex(16)>``:
its SAVEPOINT and RELEASE are new statement texts every time, each compiled afresh and each
taking a slot of the connection's statement cache (128 statements by default). The writer's
savepoints (the gateway's per job, the journal processor's, the recorder's) all use it. On the writer,
which applied deliveries with two such savepoints each, that cost 14.8 % of the instructions
per bot reply; the same old code with a 1,024-statement cache instead cost 13.9 % less, so
most of it was the writer's other statements compiled again after being pushed out of the
cache (BENCHMARKS.md, "Writer SQL per reply (helper-46, 2026-11-27)").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlite_utils import Database

__all__ = ["savepoint"]


@contextmanager
def savepoint(db: Database, name: str) -> Iterator[None]:
    """``db.atomic()`` under the savepoint ``name`` (an SQL identifier chosen by the caller,
    never data): the block's writes are rolled back on any exception, which is then raised
    (only raised if the error ended the whole transaction), and kept otherwise. Savepoints of
    one name may nest: ``ROLLBACK TO``/``RELEASE`` name the innermost. Outside a transaction it
    is ``db.atomic()`` (a transaction of its own)."""
    conn = db.conn
    if not conn.in_transaction:
        with db.atomic():
            yield
        return
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")
