"""``aat-control-plane``: serve, migrate, admin tokens, tenants, audit, notices.

Commands that change tenants write the new state to the control plane's database (audited,
actor ``cli``); the running server converges within ``AAT_CP_SWEEP_SECONDS`` (or at its next
start). ``tenants export``/``import`` run the appliance's own export/import in the tenant's
environment through the provisioner. Every failure is one line on stderr (``error: ...``) and
exit code 1, never a stack trace.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from appliance import audit
from appliance.cli_errors import OneLineErrorGroup
from control_plane.entitlements.cli import entitlements, license_group
from control_plane.notices.cli import notices
from control_plane.settings import ControlPlaneSettings, PlatformApp

__all__ = ["main"]


class _Cli(OneLineErrorGroup):
    database = "the control plane database"


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                               help="Control plane data directory (default: AAT_CP_DATA_DIR or ./cp-data).")


def _settings(data_dir: Path | None, **overrides: Any) -> ControlPlaneSettings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return ControlPlaneSettings(**values)


@click.group(cls=_Cli)
@click.version_option(package_name="aat-systems")
def main() -> None:
    """AAT control plane: webhook router, tenant fleet, admin API."""


@main.command()
@data_dir_option
def migrate(data_dir: Path | None) -> None:
    """Apply pending control-plane migrations (serve also does this at start)."""
    from control_plane.db import migrate as run

    applied = run(_settings(data_dir))
    click.echo(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@data_dir_option
def serve(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Serve the webhook router, the admin API and the tenant fleet."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type] # as the appliance: no httpx CLI import
    import uvicorn

    from appliance.heap import freeze_startup_heap, raise_young_threshold
    from appliance.logs import configure_logging
    from control_plane.app import create_app
    from control_plane.db import ServerLock

    settings = _settings(data_dir, host=host, port=port)
    configure_logging(settings.log_level)
    os.umask(0o077)
    lock = ServerLock(settings.data_dir)
    lock.acquire()
    try:
        if not settings.master_key:
            click.echo("WARNING: no AAT_CP_MASTER_KEY: a development key is kept next to the data "
                       f"({settings.data_dir / 'master.key'}); never use this in production", err=True)
        click.echo(f"AAT control plane serving at http://{settings.host}:{settings.port} "
                   f"(provisioner: {settings.provisioner})")
        app = create_app(settings, PlatformApp())
        freeze_startup_heap()
        raise_young_threshold()  # BENCHMARKS.md, "Control plane router": GC stalls in the ack tail
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                    access_log=False, server_header=False, timeout_graceful_shutdown=30)
    finally:
        lock.release()


@main.group("admin-token")
def admin_token() -> None:
    """Admin API tokens."""


@admin_token.command("create")
@click.option("--name", required=True, help="Whose token it is.")
@data_dir_option
def admin_token_create(name: str, data_dir: Path | None) -> None:
    """Create an admin token; it is printed once, as the last line."""
    from appliance.timeutil import iso_now
    from control_plane.admin import tokens
    from control_plane.db import direct_database

    if not name.strip() or len(name) > 200:
        raise click.BadParameter("give a name of 1 to 200 characters", param_hint="'--name'")
    token = tokens.new_token()
    with direct_database(_settings(data_dir)) as (db, _):
        token_id = tokens.create(db, name=name.strip(), token=token, now=iso_now())
        audit.record(db, audit.Actor.of_cli(), "admin_token.create", target_kind="admin_token", target_id=token_id)
    click.echo(f"admin token {name!r} created; it is shown only this once:", err=True)
    click.echo(token)


@main.group("audit")
def audit_group() -> None:
    """The hash-chained admin audit log."""


@audit_group.command("verify")
@data_dir_option
def audit_verify(data_dir: Path | None) -> None:
    """Check that no audit entry was changed or removed; exit 1 when the chain is broken."""
    from control_plane.db import direct_database

    with direct_database(_settings(data_dir)) as (db, _):
        intact, checked, broken = audit.verify(db)
    if not intact:
        raise click.ClickException(f"the audit log is broken at entry {broken}: it was changed, or an entry before "
                                   f"it was removed ({checked} entries verified before it)")
    click.echo(f"audit log intact: {checked} entries verified")


from control_plane.tenants_cli import tenants  # noqa: E402 - registers the tenants group

main.add_command(tenants)
main.add_command(entitlements)
main.add_command(license_group)
main.add_command(notices)

if __name__ == "__main__":  # pragma: no cover
    main()
