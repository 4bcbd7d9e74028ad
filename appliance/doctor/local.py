"""The doctor's checks that need no network: keys, database, secrets, public URL, disk."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from appliance.settings import Settings
from appliance.store import connection
from appliance.store.gateway import wrap_database
from appliance.store.keys import DataKeyFile, FieldCipher, KeyMaterialError, load_master_key
from appliance.store.migrate import pending_migrations, unknown_migrations
from appliance.store.workspace import MIGRATION_SET

__all__ = ["Result", "Context", "local_checks", "DISK_FAIL_BYTES", "DISK_WARN_BYTES"]

Status = Literal["ok", "warn", "fail"]
DISK_FAIL_BYTES = 256 * 2**20  # SQLite needs room for the WAL and checkpoints; below this, writes fail soon
DISK_WARN_BYTES = 2 * 2**30
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    status: Status
    message: str


@dataclass
class Context:
    """What the local checks found that the remote ones use."""

    data_key: bytes | None = None
    fields: FieldCipher | None = None
    channels: list[dict] = field(default_factory=list)


def _master(settings: Settings, ctx: Context) -> tuple[Result, object | None]:
    try:
        master = load_master_key(
            env_value=settings.master_key.get_secret_value() if settings.master_key else None,
            file_path=settings.master_key_file, data_dir=settings.data_dir, allow_generate=False,
        )
    except KeyMaterialError as exc:
        return Result("master key", "fail", exc.message), None
    ctx.fields = master.field_cipher()
    if master.generated_dev_key:
        return Result("master key", "warn", f"the development key {settings.data_dir / 'master.key'} is in "
                      "use, next to the data it protects: set AAT_MASTER_KEY or AAT_MASTER_KEY_FILE"), master
    where = "AAT_MASTER_KEY" if master.source == "env" else "AAT_MASTER_KEY_FILE"
    return Result("master key", "ok", f"set by {where}"), master


def _workspace(settings: Settings, master: object | None, ctx: Context) -> Result:
    keyfile = DataKeyFile(settings.data_dir)
    db_path = settings.database_path
    if not keyfile.exists():
        if db_path.exists():
            return Result("workspace", "fail", f"{db_path} exists but keys.json is missing: it cannot be opened")
        return Result("workspace", "warn", f"no workspace in {settings.data_dir} yet (`aat-appliance serve` creates it)")
    if master is None:
        return Result("workspace", "fail", "not checked: no usable master key")
    try:
        ctx.data_key = keyfile.load(master)  # type: ignore[arg-type]
    except KeyMaterialError as exc:
        return Result("workspace", "fail", exc.message)
    if not db_path.exists():
        return Result("workspace", "warn", "keys.json is there but no database yet")
    try:
        conn = connection.connect(db_path, ctx.data_key, readonly=True)
    except connection.WrongKey:
        return Result("workspace", "fail", "the data key in keys.json does not open workspace.db")
    try:
        db = wrap_database(conn)
        newer = unknown_migrations(db, MIGRATION_SET)
        pending = [] if newer else pending_migrations(db, MIGRATION_SET)
        if not newer and not pending:
            ctx.channels = [dict(zip(("id", "type", "external_id", "page_id", "token_enc"), row)) for row in conn.execute(
                "SELECT id, type, external_id, page_id, access_token_enc FROM channels "
                "WHERE status = 'active' AND access_token_enc IS NOT NULL ORDER BY id").fetchall()]
    finally:
        conn.close()
    if newer:
        return Result("workspace", "fail", f"the database was upgraded by a newer version ({', '.join(newer)}); "
                      "this version refuses to start on it")
    if pending:
        return Result("workspace", "warn", f"{len(pending)} migration(s) pending; `serve` applies them at start")
    return Result("workspace", "ok", "the master key unwraps the data key and the data key opens the database")


def _secrets(settings: Settings) -> list[Result]:
    out = []
    if settings.meta_app_secret and settings.meta_app_secret.get_secret_value():
        out.append(Result("app secret", "ok", "AAT_META_APP_SECRET is set"))
    else:
        out.append(Result("app secret", "fail", "AAT_META_APP_SECRET is not set: every webhook is refused"))
    if settings.meta_verify_token and settings.meta_verify_token.get_secret_value():
        out.append(Result("verify token", "ok", "AAT_META_VERIFY_TOKEN is set"))
    else:
        out.append(Result("verify token", "fail", "AAT_META_VERIFY_TOKEN is not set: Meta's webhook "
                          "handshake cannot succeed"))
    return out


def _public_url(settings: Settings) -> Result:
    parts = urlsplit(settings.public_url)
    if parts.scheme == "https" and parts.hostname:
        return Result("public URL", "ok", f"{settings.public_url} uses https")
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return Result("public URL", "warn", f"{settings.public_url} is local http: fine for development, "
                      "but Meta delivers webhooks only to a public https URL (AAT_PUBLIC_URL)")
    return Result("public URL", "fail", f"{settings.public_url} is not https: Meta delivers webhooks only "
                  "to https URLs; put a TLS proxy in front and set AAT_PUBLIC_URL to its https address")


def _disk(data_dir: Path) -> Result:
    probe = data_dir if data_dir.exists() else next((p for p in data_dir.parents if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    text = f"{free / 2**30:.1f} GiB free for {data_dir}"
    if free < DISK_FAIL_BYTES:
        return Result("disk space", "fail", text + ": the database will stop accepting writes; free some space")
    if free < DISK_WARN_BYTES:
        return Result("disk space", "warn", text + ": less than 2 GiB, plan for more")
    return Result("disk space", "ok", text)


def _backups(settings: Settings, now: datetime) -> Result:
    from appliance.backup.snapshot import backup_time, list_backups

    directory = settings.backup_dir
    if directory is None:
        return Result("backups", "warn", "no scheduled backups: set AAT_BACKUP_DIR (and keep the master key "
                      "elsewhere); see docs/self-hosting.md")
    found = list_backups(directory)
    if not found:
        return Result("backups", "warn", f"no backup in {directory} yet (the server takes one within 15 "
                      "minutes of starting)")
    age_hours = (now - backup_time(found[-1])).total_seconds() / 3600  # type: ignore[operator]
    text = f"the newest of {len(found)} backup(s) in {directory} is {age_hours:.1f} h old"
    if age_hours > 2 * settings.backup_interval_hours + 0.5:
        return Result("backups", "fail", text + f" (interval {settings.backup_interval_hours:g} h): the "
                      "scheduled backup is not running or failing; see the server's log")
    return Result("backups", "ok", text)


def local_checks(settings: Settings) -> tuple[list[Result], Context]:
    ctx = Context()
    master_result, master = _master(settings, ctx)
    results = [master_result, _workspace(settings, master, ctx), *_secrets(settings), _public_url(settings),
               _disk(settings.data_dir), _backups(settings, datetime.now(UTC))]
    return results, ctx
