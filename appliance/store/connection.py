"""SQLCipher connections that behave like the standard library's ``sqlite3`` ones.

``sqlcipher3`` raises its own exception classes (``sqlcipher3.dbapi2.OperationalError`` is not
a subclass of ``sqlite3.OperationalError``), while sqlite-utils catches the standard library's
classes (for instance when probing ``supports_strict`` or when ``insert(alter=True)`` adds a
missing column). :class:`CipherConnection` translates every error raised through it into the
matching ``sqlite3`` class, so sqlite-utils and our own code catch one family of exceptions:
always ``sqlite3.*``. ``tests/appliance/test_store_sqlcipher.py`` pins this down.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlcipher3
from sqlcipher3 import dbapi2 as _cipher

__all__ = ["CipherConnection", "connect", "key_pragma", "rekey_pragma", "translate_errors", "WrongKey"]

_TRANSLATION: list[tuple[type[BaseException], type[BaseException]]] = [
    # Most specific first: every class below derives from DatabaseError or Error.
    (_cipher.IntegrityError, sqlite3.IntegrityError),
    (_cipher.OperationalError, sqlite3.OperationalError),
    (_cipher.ProgrammingError, sqlite3.ProgrammingError),
    (_cipher.DataError, sqlite3.DataError),
    (_cipher.NotSupportedError, sqlite3.NotSupportedError),
    (_cipher.InternalError, sqlite3.InternalError),
    (_cipher.InterfaceError, sqlite3.InterfaceError),
    (_cipher.DatabaseError, sqlite3.DatabaseError),
    (_cipher.Error, sqlite3.Error),
]


class WrongKey(sqlite3.DatabaseError):
    """The key does not open this database (or the file is not a database)."""


def _as_is(value: Any) -> Any:
    return value


# sqlcipher3 binds a parameter that is not exactly an int, float, str or bytearray only after
# looking for an adapter, and a miss costs it a raised and cleared AttributeError (~2 us). A bot
# reply binds ~30 NULLs: an adapter that returns the value as it is makes None and bytes a plain
# dictionary hit, and what is stored does not change. (Not float: an adapter for one of those
# four base types would send every str and int the slow way.)
sqlcipher3.register_adapter(type(None), _as_is)
sqlcipher3.register_adapter(bytes, _as_is)


def _translated(exc: BaseException) -> BaseException:
    for cipher_cls, std_cls in _TRANSLATION:
        if isinstance(exc, cipher_cls):
            new = std_cls(*exc.args)
            for attr in ("sqlite_errorcode", "sqlite_errorname"):
                if hasattr(exc, attr):
                    setattr(new, attr, getattr(exc, attr))
            return new
    return exc


@contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except _cipher.Error as exc:
        raise _translated(exc) from exc


# Inline try/except rather than the translate_errors() context manager: these run for every
# statement, and a generator-based context manager costs about a quarter of the CPU of a
# small write (bench/apply_cost.py).
class CipherCursor(_cipher.Cursor):
    def execute(self, *args: Any, **kwargs: Any) -> CipherCursor:
        try:
            return super().execute(*args, **kwargs)
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def executemany(self, *args: Any, **kwargs: Any) -> CipherCursor:
        try:
            return super().executemany(*args, **kwargs)
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def executescript(self, *args: Any, **kwargs: Any) -> CipherCursor:
        try:
            return super().executescript(*args, **kwargs)
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def fetchmany(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            return super().fetchmany(*args, **kwargs)
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except _cipher.Error as exc:
            raise _translated(exc) from exc


class CipherConnection(_cipher.Connection):
    """An ``sqlcipher3`` connection whose errors are ``sqlite3`` errors."""

    def cursor(self, factory: Any = CipherCursor) -> Any:  # type: ignore[override]
        try:
            return super().cursor(factory)
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:  # type: ignore[override]
        return self.cursor().executemany(sql, parameters)

    def executescript(self, sql: str, /) -> Any:  # type: ignore[override]
        return self.cursor().executescript(sql)

    def commit(self) -> None:
        try:
            super().commit()
        except _cipher.Error as exc:
            raise _translated(exc) from exc

    def rollback(self) -> None:
        try:
            super().rollback()
        except _cipher.Error as exc:
            raise _translated(exc) from exc


def key_pragma(key: bytes) -> str:
    """A raw 256-bit key: SQLCipher skips its passphrase KDF, so opening stays cheap."""
    return f"PRAGMA key = \"x'{key.hex()}'\""


def rekey_pragma(key: bytes) -> str:
    return f"PRAGMA rekey = \"x'{key.hex()}'\""


def connect(path: Path | str, key: bytes, *, readonly: bool = False) -> CipherConnection:
    """Open (or create) an SQLCipher database keyed with a raw 32-byte key.

    Settings: WAL, ``synchronous=FULL`` (an acknowledged webhook survives power loss, not just
    a crash), foreign keys on, temp storage in memory (no plaintext spill files), and a busy
    timeout for the rare second process (CLI commands while the server runs).
    Raises :class:`WrongKey` when the key does not open the file.
    """
    conn = sqlcipher3.connect(
        str(path), factory=CipherConnection, check_same_thread=False, timeout=10.0
    )
    try:
        # SQLCipher prints decryption failures to stderr; a wrong key is reported as WrongKey.
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(key_pragma(key))
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise WrongKey("the data key does not open the workspace database") from exc
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 10000")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
    except BaseException:
        conn.close()
        raise
    return conn
