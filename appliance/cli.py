"""``aat-appliance``: serve, migrate, users, tokens, rekey, journal, export, import, export-json, destroy,
backup, doctor.

Every command reads ``Settings`` once (environment, ``.env``) and applies its own flags on
top. Every failure, a usage error included, is printed as one plain line on stderr
(``error: ...``) with exit code 1; never a stack trace.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from appliance import audit
from appliance.backup.cli import backup_group
from appliance.cli_errors import OneLineErrorGroup
from appliance.cli_options import data_dir_option
from appliance.cli_options import settings_for as _settings
from appliance.settings import Settings
from appliance.timeutil import iso_now

if TYPE_CHECKING:
    from litestar import Litestar

    from appliance.metrics import Metrics
    from appliance.store.workspace import Workspace

__all__ = ["main"]


def _problems(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """``--email: is not an email address; password: ...`` from a pydantic error."""
    names = names or {}
    parts = []
    for error in exc.errors():
        where = ".".join(map(str, error["loc"]))
        parts.append(f"{names.get(where, where)}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


class _Cli(OneLineErrorGroup):
    """The root group: every exception is one line on stderr and exit code 1."""

    database = "the workspace database"
    settings_problems = staticmethod(_problems)


@click.group(cls=_Cli)
@click.version_option(package_name="aat-systems")
def main() -> None:
    """AAT appliance: one workspace, one process, one encrypted file."""


main.add_command(backup_group)


@main.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@data_dir_option
def serve(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Migrate, then serve the web app, the webhook receiver and the workers."""
    from appliance.logs import configure_logging
    from appliance.store.workspace import ProcessLock

    settings = _settings(data_dir, host=host, port=port)
    configure_logging(settings.log_level)
    os.umask(0o077)  # the database, its WAL and the queue are readable by this user only
    lock = ProcessLock(settings.data_dir)
    lock.acquire("starting a second server on the same data directory")
    try:
        _serve(settings)
    finally:
        lock.release()


def _serve(settings: Settings) -> None:
    """Open and migrate the workspace, then listen with the front door (appliance/web/front.py):
    it takes webhooks and answers ``/readyz`` at once, while the full app is built in a thread
    and started (BENCHMARKS.md, "Footprint": restart-to-ready)."""
    # httpx's command-line client (rich, pygments) is kept out by appliance/__init__.py: here it
    # came too late, this module's own imports had loaded httpx already.
    import uvicorn

    from appliance.errors import AatError
    from appliance.ingest.receiver import WebhookReceiver
    from appliance.metrics import Metrics
    from appliance.store.workspace import open_workspace
    from appliance.team.demo import ensure_demo_login
    from appliance.web.front import FrontDoor

    workspace = open_workspace(settings)
    try:
        demo = None
        if workspace.master.generated_dev_key:
            demo = workspace.gateway.write_sync(ensure_demo_login, iso_now())
        from appliance.entitlements.service import load as load_entitlements

        workspace.gateway.write_sync(load_entitlements, settings)  # an unusable license stops here, plainly
        _banner(settings, workspace.master.generated_dev_key, demo)
        metrics = Metrics()  # one set of counters: the door counts the deliveries it takes, the app the rest
        door = FrontDoor(
            workspace=workspace,
            webhooks=WebhookReceiver(settings=settings, db=workspace.gateway, metrics=metrics),
            build=lambda: _full_app(settings, workspace, metrics),
            on_open=lambda app: app.state.runtime.wake_processor(),  # type: ignore[attr-defined]
            open_webhooks=lambda app: app.state.runtime.webhooks,  # type: ignore[attr-defined]
        )
        server = uvicorn.Server(uvicorn.Config(
            door,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=15,
        ))
        door.on_failure = lambda: setattr(server, "should_exit", True)
        # uvicorn re-raises a SIGTERM it handled once it has shut down, so code after this line
        # runs only when the server stopped by itself; the app's lifespan (or the door, when the
        # app never opened) closes the workspace, checkpointing the WAL.
        server.run()
        if door.failure is not None:
            raise AatError(f"the appliance failed to start: {door.failure}")
        if not server.started:
            sys.exit(3)  # uvicorn.run's "startup failure" (the address in use ...), logged by uvicorn
    finally:
        workspace.close()


def _full_app(settings: Settings, workspace: Workspace, metrics: Metrics) -> Litestar:
    """The Litestar app, built (in the door's thread) with the cyclic collector still off, then
    the start-up heap frozen and the collector on again (appliance/__init__.py, heap.py)."""
    from appliance.app import create_app
    from appliance.heap import freeze_startup_heap, raise_young_threshold

    app = create_app(settings, workspace=workspace, close_workspace=True, metrics=metrics)
    freeze_startup_heap()
    raise_young_threshold()  # BENCHMARKS.md, "Inbound message -> bot reply": GC cost per reply
    gc.enable()  # off since the first import of a serve process (appliance/__init__.py)
    return app


def _banner(settings: Settings, dev_key: bool, demo: Any) -> None:
    url = f"http://{settings.host}:{settings.port}"
    lines = [f"AAT appliance serving at {url}", f"data directory: {settings.data_dir.resolve()}"]
    if dev_key:
        warning = [
            "!" * 78,
            "!! WARNING: DEVELOPMENT MASTER KEY",
            "!! No AAT_MASTER_KEY or AAT_MASTER_KEY_FILE is set, so the key that unlocks this",
            f"!! workspace was generated at {settings.data_dir / 'master.key'}, next to the data.",
            "!! Anyone with this directory can read everything. Never use this in production:",
            "!! set AAT_MASTER_KEY (base64 of 32 random bytes) or AAT_MASTER_KEY_FILE.",
            "!" * 78,
        ]
        click.echo("\n".join(warning), err=True)
    if demo is not None:
        lines += [
            f"demo owner login: {demo.email} / {demo.password}",
            f"demo API token:   {demo.api_token}",
            f"try: curl -H 'Authorization: Bearer {demo.api_token}' {url}/api/v1/me",
        ]
    click.echo("\n".join(lines))


@main.command()
@data_dir_option
def migrate(data_dir: Path | None) -> None:
    """Apply pending database migrations (the server also does this at start)."""
    from appliance.store.workspace import ProcessLock, load_keys
    from appliance.store.workspace import migrate as run_migrations

    settings = _settings(data_dir)
    lock = ProcessLock(settings.data_dir)
    lock.acquire("migrating")
    try:
        _, data_key = load_keys(settings)
        applied = run_migrations(settings, data_key)
    finally:
        lock.release()
    click.echo(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@main.command()
@data_dir_option
def rekey(data_dir: Path | None) -> None:
    """Rotate the workspace data key and re-encrypt the database with it."""
    from appliance.store.workspace import ProcessLock
    from appliance.store.workspace import rekey as rotate

    settings = _settings(data_dir)
    lock = ProcessLock(settings.data_dir)
    lock.acquire("rotating the data key")
    try:
        rotate(settings)
    finally:
        lock.release()
    click.echo("data key rotated; the database is re-encrypted")


@main.group()
def users() -> None:
    """Manage the team."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["owner", "admin", "agent"]), required=True)
@click.option("--name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@data_dir_option
def users_create(email: str, role: str, name: str, password_stdin: bool, data_dir: Path | None) -> None:
    """Create a user (argon2id password). Without --password-stdin the user has no password
    yet and cannot sign in until one is set."""
    from appliance.store.workspace import direct_database
    from appliance.team import store
    from appliance.team.credentials import hash_password
    from appliance.team.models import NewUser

    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    try:
        user = NewUser(email=email, role=role, name=name, password=password)
    except ValidationError as exc:
        names = {"email": "--email", "name": "--name", "role": "--role", "password": "the password"}
        raise click.ClickException(_problems(exc, names)) from exc
    settings = _settings(data_dir)
    password_hash = hash_password(user.password) if user.password else None
    with direct_database(settings) as db:
        row = store.create_user(db, email=user.email, role=user.role, name=user.name,
                                password_hash=password_hash, now=iso_now())
        audit.record(db, audit.Actor.of_cli(), "user.create", target_kind="user", target_id=row["id"],
                     details={"role": row["role"]})
    click.echo(f"created {row['role']} {row['email']} (id {row['id']})")


@users.command("reset-password")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Set the new password from standard input.")
@data_dir_option
def users_reset_password(email: str, password_stdin: bool, data_dir: Path | None) -> None:
    """Reset a user's password: with --password-stdin, set it now; without, print a one-time
    reset link (valid 2 hours) to hand over. Either way the user's sessions end once the new
    password is set, and the audit log records it."""
    from appliance.errors import AatError
    from appliance.store.workspace import direct_database
    from appliance.team.reset import reset_link, reset_password

    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    settings = _settings(data_dir)
    try:
        with direct_database(settings) as db:
            if password is not None:
                reset_password(db, email, password, actor=audit.Actor.of_cli())
                click.echo(f"password of {email.strip().lower()} set; their sessions ended")
            else:
                click.echo(reset_link(db, email, public_url=settings.public_url, actor=audit.Actor.of_cli()))
    except AatError as exc:
        raise click.ClickException(exc.message) from exc


@main.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--role", type=click.Choice(["owner", "admin", "agent"]), default="admin", show_default=True)
@data_dir_option
def tokens_create(name: str, role: str, data_dir: Path | None) -> None:
    """Create an API token; it is printed once, as the last line."""
    from appliance.store.workspace import direct_database
    from appliance.team import store
    from appliance.team.credentials import hash_token, new_api_token

    if not name.strip() or len(name) > 200:
        raise click.BadParameter("give a name of 1 to 200 characters", param_hint="'--name'")
    settings = _settings(data_dir)
    token = new_api_token()
    with direct_database(settings) as db:
        token_id = store.create_token(db, name=name, token_hash=hash_token(token), prefix=token[:10],
                                      role=role, now=iso_now())
        audit.record(db, audit.Actor.of_cli(), "token.create", target_kind="token", target_id=token_id,
                     details={"role": role})
    click.echo(f"token {name!r} ({role}) created; it is shown only this once:", err=True)
    click.echo(token)


@main.group("audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command("verify")
@data_dir_option
def audit_verify(data_dir: Path | None) -> None:
    """Check that no audit entry was changed or removed; exit 1 when the chain is broken."""
    from appliance.store.workspace import direct_database

    settings = _settings(data_dir)
    with direct_database(settings) as db:
        intact, checked, broken = audit.verify(db)
    if not intact:
        raise click.ClickException(
            f"the audit log is broken at entry {broken}: it was changed, or an entry before it was removed "
            f"({checked} entries verified before it)"
        )
    click.echo(f"audit log intact: {checked} entries verified")


@main.group()
def journal() -> None:
    """Inspect and replay the webhook journal."""


@journal.command("retry")
@click.option("--id", "journal_id", type=int, default=None, help="One row (default: every failed row).")
@data_dir_option
def journal_retry(journal_id: int | None, data_dir: Path | None) -> None:
    """Put failed deliveries back in the queue; the server processes them again."""
    from appliance.ingest import journal as store
    from appliance.store.workspace import direct_database

    settings = _settings(data_dir)
    with direct_database(settings) as db:
        count = store.retry_failed(db, journal_id)
    if journal_id is not None and count == 0:
        raise click.ClickException(f"journal row {journal_id} does not exist, has not failed, or was purged")
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")



# --- privacy: export, import, teardown (appliance/privacy) ----------------------------------

passphrase_option = click.option(
    "--passphrase-stdin", is_flag=True, help="Read the passphrase from standard input.",
)


def _stdin_secret() -> str:
    return sys.stdin.read().rstrip("\r\n")


class _Progress:
    """A click progress bar on stderr, sized by the first report (called from any one thread)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, width=32)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@main.command("export")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write (must not exist).")
@passphrase_option
@data_dir_option
def export_workspace(out: Path, passphrase_stdin: bool, data_dir: Path | None) -> None:
    """Write the whole workspace to one SQLCipher 4 file keyed by a passphrase (given on stdin,
    or generated and printed once as the last line). Safe while the server runs; runs at a
    lower CPU priority (nice 10) so that serving comes first."""
    import secrets

    from appliance.privacy.export import export_workspace as run_export
    from appliance.store.workspace import direct_database

    settings = _settings(data_dir)
    passphrase = _stdin_secret() if passphrase_stdin else secrets.token_urlsafe(24)
    if settings.database_path.exists():
        with direct_database(settings):
            pass  # the audit entry needs a migrated schema: refuse now, not after the copy
    os.nice(10)  # a batch job beside a live server: webhook acknowledgements come first
    progress = _Progress("exporting")
    try:
        result = run_export(settings, out, passphrase, progress=progress)
    finally:
        progress.close()
    with direct_database(settings) as db:
        audit.record(db, audit.Actor.of_cli(), "workspace.export", details={"tables": len(result.tables), "bytes": result.size})
    rows = sum(result.tables.values())
    click.echo(f"exported {len(result.tables)} tables ({rows} rows, {result.files} media files, "
               f"{result.size / 2**20:.1f} MiB) to {result.path} in {result.seconds:.1f} s", err=True)
    if passphrase_stdin:
        return
    click.echo("its passphrase is shown only this once; the file cannot be opened without it:", err=True)
    click.echo(passphrase)


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@passphrase_option
@data_dir_option
def import_workspace(file: Path, passphrase_stdin: bool, data_dir: Path | None) -> None:
    """Restore an export into an empty data directory, under a new data key wrapped by this
    appliance's master key. Without --passphrase-stdin the passphrase is asked for."""
    from appliance.privacy.restore import import_workspace as run_import
    from appliance.store.workspace import ProcessLock

    settings = _settings(data_dir)
    passphrase = _stdin_secret() if passphrase_stdin else click.prompt("passphrase", hide_input=True, err=True)
    lock = ProcessLock(settings.data_dir)
    lock.acquire("importing")
    try:
        result = run_import(settings, file, passphrase, audit.Actor.of_cli())
    finally:
        lock.release()
    if result.tokens_sealed_elsewhere:
        click.echo(f"warning: {result.tokens_sealed_elsewhere} channel token(s) were encrypted by another "
                   "master key and cannot be used here: connect those channels (and integrations) again", err=True)
    click.echo(f"imported {len(result.tables)} tables ({sum(result.tables.values())} rows, {result.files} media "
               f"files) exported at {result.exported_at} into {settings.data_dir}")


@main.command("export-json")
@click.option("--out", required=True, help="The file to write (must not exist), or - for standard output.")
@data_dir_option
def export_json(out: str, data_dir: Path | None) -> None:
    """Write the whole workspace as one JSON document (portability; secrets left out)."""
    from appliance.privacy.json_export import write_json

    settings = _settings(data_dir)
    if out == "-":
        counts = write_json(settings, click.get_text_stream("stdout"))
    else:
        path = Path(out)
        if path.exists():
            raise click.ClickException(f"{path} exists already; choose a new file name")
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "x", encoding="utf-8") as fh:
                counts = write_json(settings, fh)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, path)
    click.echo(f"exported {len(counts)} tables ({sum(counts.values())} rows) as JSON", err=True)


@main.command()
@click.option("--yes", is_flag=True, help="Confirm that the workspace is to be erased for good.")
@data_dir_option
def destroy(yes: bool, data_dir: Path | None) -> None:
    """Crypto-shred the workspace: overwrite and remove its wrapped data key, then remove the
    database, the queue and media. Needs no master key; the server must be stopped."""
    from appliance.privacy.destroy import destroy as shred
    from appliance.store.workspace import ProcessLock

    if not yes:
        raise click.UsageError("refusing to destroy the workspace without --yes: nothing can be recovered after it")
    settings = _settings(data_dir)
    if not settings.data_dir.is_dir():
        click.echo(f"nothing to destroy: {settings.data_dir} does not exist")
        return
    lock = ProcessLock(settings.data_dir)
    lock.acquire("destroying the workspace")
    try:
        done = shred(settings.data_dir)
    finally:
        lock.release()
    if done.nothing:
        click.echo(f"nothing to destroy in {settings.data_dir}")
        return
    click.echo(f"destroyed: shredded {', '.join(done.keys) or 'no key file'}; removed {len(done.files)} file(s)")

# --- backups and doctor (appliance/backup, appliance/doctor) ---------------------------------

@main.group("usage")
def usage_group() -> None:
    """This month's usage (hosted tenants report it to the control plane hourly)."""


@usage_group.command("report")
@data_dir_option
def usage_report(data_dir: Path | None) -> None:
    """Send this month's usage to the control plane now, signed; exit 1 when it was refused."""
    import json

    from appliance.entitlements.report import report_now

    done = report_now(_settings(data_dir))
    click.echo(json.dumps(done, sort_keys=True))
    if done["status"] != 200:
        raise SystemExit(1)


@main.command()
@data_dir_option
def doctor(data_dir: Path | None) -> int:
    """Check this installation: keys, secrets, public URL, webhook handshake, channel tokens,
    disk space, clock. Exit 0 when all is well, 1 on a problem, 2 on warnings only."""
    from appliance.doctor import run_checks

    results = run_checks(_settings(data_dir))
    width = max(len(r.name) for r in results)
    for r in results:
        click.echo(f"{r.status.upper():<7} {r.name:<{width}}  {r.message}")
    failed = sum(r.status == "fail" for r in results)
    warned = sum(r.status == "warn" for r in results)
    if failed:
        click.echo(f"{failed} problem(s), {warned} warning(s)")
        return 1
    if warned:
        click.echo(f"no problems, {warned} warning(s)")
        return 2
    click.echo("all checks passed")
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
