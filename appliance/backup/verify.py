"""``aat-appliance backup verify`` and ``backup restore``.

**Verify** unpacks a backup into a temporary directory (and nowhere else) and checks, in order:
the manifest's format; the SHA-256 of every file; that this appliance's master key unwraps the
backup's data key; ``PRAGMA cipher_integrity_check`` (every page's HMAC) and
``PRAGMA integrity_check``; that the migrations recorded in the database are the manifest's and
all known to this code (a backup from a newer version cannot be restored by an older one); and
the row count of every table against the manifest. Each failure is one plain sentence.

**Restore** verifies first, then copies the database, the media and (last) ``keys.json`` into an
empty data directory, under the process lock. The server applies any newer migrations when it
starts (an upgrade); nothing else is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from appliance.backup.snapshot import FORMAT, BackupError, applied_migrations, copy_tree_files, list_backups
from appliance.privacy.export import fsync_path, table_counts
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.keys import DataKeyFile, KeyMaterialError, load_master_key
from appliance.store.migrate import migration_files
from appliance.store.workspace import MIGRATION_SET, ProcessLock

__all__ = ["VerifyReport", "verify_backup", "restore_backup", "resolve_backup"]


@dataclass
class VerifyReport:
    path: Path
    created_at: str = ""
    tables: dict[str, int] = field(default_factory=dict)
    migrations: list[str] = field(default_factory=list)
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def resolve_backup(path: Path) -> Path:
    """A backup file, or the newest backup in a directory."""
    if path.is_dir():
        found = list_backups(path)
        if not found:
            raise BackupError(f"there is no backup (aat-backup-*.tar) in {path}", code="no_backup")
        return found[-1]
    if not path.is_file():
        raise BackupError(f"{path} does not exist", code="no_backup")
    return path


def _unpack(path: Path, into: Path) -> dict:
    """Extract only plain files with safe relative names; returns the manifest. No link, device,
    directory entry or sparse file (whose holes would unpack to far more than the archive holds:
    a tar bomb), and never more bytes than the archive itself has."""
    budget = path.stat().st_size
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar.getmembers():
                name = PurePosixPath(member.name)
                budget -= member.size
                if (not member.isfile() or member.issparse() or name.is_absolute() or ".." in name.parts
                        or budget < 0):
                    raise BackupError(f"{path.name} holds an unexpected entry {member.name!r}: not an AAT backup")
                source = tar.extractfile(member)
                assert source is not None
                dest = into.joinpath(*name.parts)
                dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with source, open(dest, "wb") as out:
                    shutil.copyfileobj(source, out)
    except tarfile.TarError as exc:
        raise BackupError(f"{path.name} is not a readable backup (damaged or truncated tar: {exc})") from exc
    try:
        manifest = json.loads((into / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path.name} has no readable manifest.json: not an AAT backup") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path.name} is not an {FORMAT} backup")
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_database(report: VerifyReport, manifest: dict, db_path: Path, data_key: bytes) -> None:
    try:
        conn = connection.connect(db_path, data_key, readonly=True)
    except connection.WrongKey:
        report.problems.append("the backup's data key does not open its database")
        return
    try:
        cipher = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
        if cipher:
            report.problems.append(f"cipher_integrity_check found {len(cipher)} damaged page(s): {cipher[0]}")
        plain = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if plain != ["ok"]:
            report.problems.append(f"integrity_check failed: {'; '.join(plain[:3])}")
        report.migrations = applied_migrations(conn)
        report.tables = table_counts(conn)
    finally:
        conn.close()
    if report.migrations != manifest.get("migrations"):
        report.problems.append("the migrations recorded in the database differ from the manifest")
    known = {name for name, _ in migration_files(MIGRATION_SET)}
    newer = [m for m in report.migrations if m not in known]
    if newer:
        report.problems.append(
            f"the backup was made by a newer version of the appliance (migrations unknown here: "
            f"{', '.join(newer)}); restore it with that version or a later one")
    expected = manifest.get("tables") or {}
    differ = sorted(t for t in set(expected) | set(report.tables) if expected.get(t) != report.tables.get(t))
    if differ:
        report.problems.append(f"row counts differ from the manifest in {len(differ)} table(s): {', '.join(differ[:5])}")


@contextlib.contextmanager
def _verified(settings: Settings, path: Path) -> Iterator[tuple[VerifyReport, Path]]:
    path = resolve_backup(path)
    report = VerifyReport(path)
    with tempfile.TemporaryDirectory(prefix="aat-verify-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o700)
        manifest = _unpack(path, root)
        report.created_at = str(manifest.get("created_at", ""))
        files = manifest.get("files") or {}
        report.files = sum(1 for name in files if name.startswith("media/"))
        for name, digest in sorted(files.items()):
            target = root.joinpath(*PurePosixPath(name).parts)
            if not target.is_file():
                report.problems.append(f"{name} is missing from the backup")
            elif _sha256(target) != digest:
                report.problems.append(f"{name} does not match its checksum (the file was changed or damaged)")
        if not report.problems:
            master = load_master_key(
                env_value=settings.master_key.get_secret_value() if settings.master_key else None,
                file_path=settings.master_key_file, data_dir=settings.data_dir, allow_generate=False,
            )
            try:
                data_key = DataKeyFile(root).load(master)
            except KeyMaterialError:
                report.problems.append(
                    "this appliance's master key does not unwrap the backup's data key: set the "
                    "AAT_MASTER_KEY the backup was made with")
            else:
                _check_database(report, manifest, root / "workspace.db", data_key)
        yield report, root


def verify_backup(settings: Settings, path: Path) -> VerifyReport:
    """Check a backup file (or the newest in a directory) without touching ``DATA_DIR``."""
    with _verified(settings, path) as (report, _):
        return report


def restore_backup(settings: Settings, path: Path) -> VerifyReport:
    """Verify, then restore into ``settings.data_dir``, which must hold no workspace."""
    data_dir = settings.data_dir
    for name in ("workspace.db", "keys.json"):
        if (data_dir / name).exists():
            raise BackupError(
                f"{data_dir} already holds a workspace ({name}); restore into an empty data "
                "directory (or `aat-appliance destroy --yes` this one first)", code="workspace_exists")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = ProcessLock(data_dir)
    lock.acquire("restoring a backup")
    umask = os.umask(0o077)  # restored files and folders: this user's only, as `serve` makes them
    try:
        with _verified(settings, path) as (report, root):
            if not report.ok:
                raise BackupError(f"{report.path.name} failed verification: {report.problems[0]}")
            if (root / "media").is_dir():
                copy_tree_files(root / "media", data_dir / "media")
            # The database first, keys.json last: a crash in between leaves "workspace.db exists
            # but keys.json is missing" (a clear refusal), never an empty workspace on a new key.
            for name in ("workspace.db", "keys.json"):
                partial = data_dir / f"{name}.restoring"
                shutil.copyfile(root / name, partial)
                os.chmod(partial, 0o600)
                fsync_path(partial)
                os.replace(partial, data_dir / name)
            fsync_path(data_dir)
            return report
    finally:
        os.umask(umask)
        lock.release()
