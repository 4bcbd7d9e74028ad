"""Forward-only numbered migrations: ``migrations/<set>/NNNN_name.sql``.

Each file runs once, inside a transaction together with the record that it ran (sqlite-utils
``Migrations``, table ``_sqlite_migrations``). Files are never edited after they ship; a change
is a new file. The SQL files ship inside the ``migrations`` package so an installed wheel has
them too.

Downgrades are refused: a database that records a migration this code does not know was
written by a newer version, and :func:`apply_migrations` raises :class:`NewerDatabase` before
touching it (an older schema reader could silently drop or misread what it does not know).
"""

from __future__ import annotations

import re
from importlib import resources

import sqlite_utils
from sqlite_utils import Migrations

from appliance.errors import AatError

__all__ = [
    "migration_files", "build_migrations", "apply_migrations", "pending_migrations", "unknown_migrations",
    "NewerDatabase",
]


class NewerDatabase(AatError):
    """The database was migrated by a newer version of the code (a downgrade)."""

    default_code = "database_newer"

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files(migration_set: str) -> list[tuple[str, str]]:
    """``[(name, sql)]`` in number order; a misnamed or duplicate-numbered file is an error."""
    folder = resources.files("migrations") / migration_set
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    seen: set[str] = set()
    result = []
    for entry in files:
        match = _NAME.match(entry.name)
        if not match:
            raise ValueError(f"migration file {entry.name!r} must be named NNNN_name.sql")
        if match.group(1) in seen:
            raise ValueError(f"two migration files share number {match.group(1)}")
        seen.add(match.group(1))
        result.append((entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    return result


def build_migrations(migration_set: str) -> Migrations:
    migrations = Migrations(migration_set)
    for name, sql in migration_files(migration_set):

        def run(db: sqlite_utils.Database, _sql: str = sql) -> None:
            db.executescript(_sql)

        migrations(name=name)(run)
    return migrations


def pending_migrations(db: sqlite_utils.Database, migration_set: str) -> list[str]:
    return [m.name for m in build_migrations(migration_set).pending(db)]


def unknown_migrations(db: sqlite_utils.Database, migration_set: str) -> list[str]:
    """Migrations recorded in the database that no file here defines (newer code ran on it)."""
    if "_sqlite_migrations" not in db.table_names():
        return []
    known = {name for name, _ in migration_files(migration_set)}
    rows = db.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY name",
                      [migration_set]).fetchall()
    return [row[0] for row in rows if row[0] not in known]


def apply_migrations(db: sqlite_utils.Database, migration_set: str) -> list[str]:
    """Apply what is pending; returns the names applied, in order. Raises
    :class:`NewerDatabase` (and changes nothing) when the database is newer than this code."""
    newer = unknown_migrations(db, migration_set)
    if newer:
        raise NewerDatabase(
            f"this database was upgraded by a newer version of AAT (it has migration(s) this version "
            f"does not know: {', '.join(newer)}). Downgrades are not supported: run that newer version "
            "again, or restore a backup taken before the upgrade",
            code="database_newer",
        )
    migrations = build_migrations(migration_set)
    names = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return names
