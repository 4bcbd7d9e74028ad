"""SQLCipher under sqlite-utils: the pitfall STYLE.md warns about, pinned down on real files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from appliance.store import connection
from appliance.store.gateway import wrap_database
from appliance.store.migrate import apply_migrations, migration_files, pending_migrations

KEY = bytes(range(32))


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    conn = connection.connect(tmp_path / "t.db", KEY)
    yield wrap_database(conn)
    conn.close()


def test_errors_are_standard_library_classes(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError):
        db.execute("SELECT * FROM missing")


def test_parameters_are_stored_as_given(db: sqlite_utils.Database) -> None:
    """None and bytes are bound through the identity adapters connection.py registers (a
    speed-up): every type still stores as itself, NULL included, and a bytes subclass or a
    registered adapter of its own is unaffected."""
    db.execute("CREATE TABLE t (v)")
    values = [None, b"\x00raw", b"", "text", "", 7, 2**62, 1.5, True, bytearray(b"ba"), memoryview(b"mv")]
    for value in values:
        db.execute("INSERT INTO t (v) VALUES (?)", [value])
    stored = [row[0] for row in db.execute("SELECT v FROM t ORDER BY rowid")]
    assert stored == [None, b"\x00raw", b"", "text", "", 7, 2**62, 1.5, 1, b"ba", b"mv"]
    assert [row[0] for row in db.execute("SELECT typeof(v) FROM t ORDER BY rowid")] == [
        "null", "blob", "blob", "text", "text", "integer", "integer", "real", "integer", "blob", "blob"]
    assert db.execute("SELECT count(*) FROM t WHERE v IS NULL").fetchone()[0] == 1


def test_sqlite_utils_probes_and_alter_work(db: sqlite_utils.Database) -> None:
    # supports_strict catches sqlite3.OperationalError internally; it must not escape.
    assert isinstance(db.supports_strict, bool)
    table = db.table("people", pk="id")
    table.insert({"id": 1, "name": "Ana"})
    # insert(alter=True) relies on catching OperationalError to add the missing column.
    table.insert({"id": 2, "name": "Giorgi", "city": "Tbilisi"}, alter=True)
    assert table.columns_dict == {"id": int, "name": str, "city": str}


def test_transform_works_over_sqlcipher(db: sqlite_utils.Database) -> None:
    db["t"].insert({"id": 1, "name": "x", "age": "3"}, pk="id")
    db["t"].transform(types={"age": int}, rename={"name": "label"}, drop={"x"})
    assert db["t"].columns_dict == {"id": int, "label": str, "age": int}
    assert list(db["t"].rows) == [{"id": 1, "label": "x", "age": 3}]


def test_drop_ignore_swallows_missing_table(db: sqlite_utils.Database) -> None:
    db["nope"].drop(ignore=True)


def test_fts5_is_available_inside_the_encrypted_database(db: sqlite_utils.Database) -> None:
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    db.execute("INSERT INTO docs VALUES ('opening hours on sunday')")
    assert db.execute("SELECT count(*) FROM docs WHERE docs MATCH 'sunday'").fetchone() == (1,)


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    connection.connect(tmp_path / "t.db", KEY).close()
    with pytest.raises(connection.WrongKey):
        connection.connect(tmp_path / "t.db", os.urandom(32))


def test_file_is_not_plain_sqlite(tmp_path: Path) -> None:
    conn = connection.connect(tmp_path / "t.db", KEY)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES ('a very secret sentence')")
    conn.commit()
    conn.close()
    raw = (tmp_path / "t.db").read_bytes()
    assert not raw.startswith(b"SQLite format 3")
    assert b"secret sentence" not in raw
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(tmp_path / "t.db").execute("SELECT * FROM sqlite_master").fetchall()


def test_connection_settings(db: sqlite_utils.Database) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert db.execute("PRAGMA temp_store").fetchone() == (2,)  # MEMORY


def test_readonly_connection_cannot_write(tmp_path: Path) -> None:
    connection.connect(tmp_path / "t.db", KEY).close()
    reader = connection.connect(tmp_path / "t.db", KEY, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("CREATE TABLE t (x)")
    reader.close()


def test_migrations_apply_once_in_order(db: sqlite_utils.Database) -> None:
    names = [name for name, _ in migration_files("appliance")]
    assert names and names == sorted(names)
    assert apply_migrations(db, "appliance") == names
    assert apply_migrations(db, "appliance") == []
    assert pending_migrations(db, "appliance") == []
    assert {"channels", "contacts", "conversations", "messages", "webhook_journal", "outbox"} <= set(db.table_names())


def test_a_failing_migration_leaves_nothing_behind(db: sqlite_utils.Database) -> None:
    from sqlite_utils import Migrations

    migrations = Migrations("broken")

    @migrations(name="0001_half")
    def half(database: sqlite_utils.Database) -> None:
        database.executescript("CREATE TABLE half_done (x); INSERT INTO nowhere VALUES (1);")

    with pytest.raises(sqlite3.OperationalError):
        migrations.apply(db)
    assert "half_done" not in db.table_names()
    assert [m.name for m in migrations.pending(db)] == ["0001_half"]
