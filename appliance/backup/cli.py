"""``aat-appliance backup [--to DIR]``, ``backup verify PATH``, ``backup restore PATH``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from appliance.cli_options import data_dir_option, settings_for

__all__ = ["backup_group"]


@click.group("backup", invoke_without_command=True)
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to write the backup to (default: AAT_BACKUP_DIR).")
@click.option("--keep", type=click.IntRange(1, 1000), default=None,
              help="Backups to keep in that directory (default: AAT_BACKUP_KEEP).")
@click.option("--no-upload", is_flag=True, help="Do not copy it to AAT_BACKUP_S3_URL.")
@data_dir_option
@click.pass_context
def backup_group(ctx: click.Context, to: Path | None, keep: int | None, no_upload: bool,
                 data_dir: Path | None) -> None:
    """Write an encrypted snapshot of the workspace (safe while serving), keep the newest N,
    and upload it when AAT_BACKUP_S3_URL is set. Restoring needs the same master key."""
    if ctx.invoked_subcommand is not None:
        return
    from appliance.backup.service import run_backup

    settings = settings_for(data_dir)
    directory = to or settings.backup_dir
    if directory is None:
        raise click.UsageError("say where to write the backup: --to DIR (or set AAT_BACKUP_DIR)")
    done = run_backup(settings, directory, keep=keep or settings.backup_keep, upload=not no_upload)
    b = done.backup
    click.echo(f"backup written: {b.path} ({b.size / 2**20:.1f} MiB, {len(b.tables)} tables, "
               f"{sum(b.tables.values())} rows, {b.files} media files) in {b.seconds:.1f} s")
    if done.removed:
        click.echo(f"removed {len(done.removed)} older backup(s), keeping {keep or settings.backup_keep}")
    if done.uploaded:
        click.echo(f"uploaded to {done.uploaded}")


def _report(report: Any) -> None:
    click.echo(f"backup {report.path.name} taken {report.created_at or 'at an unknown time'}")
    if report.tables:
        click.echo(f"  {len(report.tables)} tables, {sum(report.tables.values())} rows, {report.files} media "
                   f"files, {len(report.migrations)} migrations")


@backup_group.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@data_dir_option
def backup_verify(path: Path, data_dir: Path | None) -> None:
    """Unpack a backup (FILE, or the newest in DIR) into a temporary directory and check it:
    checksums, master key, cipher and SQLite integrity, migrations, row counts. Exit 1 on a problem."""
    from appliance.backup.verify import verify_backup

    report = verify_backup(settings_for(data_dir), path)
    _report(report)
    if not report.ok:
        raise click.ClickException(f"{report.path.name} is NOT usable: " + "; ".join(report.problems))
    click.echo("verified: the backup restores and is intact")


@backup_group.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@data_dir_option
def backup_restore(path: Path, data_dir: Path | None) -> None:
    """Verify a backup (FILE, or the newest in DIR), then restore it into an empty data
    directory. The server applies newer migrations when it starts."""
    from appliance.backup.verify import restore_backup

    settings = settings_for(data_dir)
    report = restore_backup(settings, path)
    _report(report)
    click.echo(f"restored into {settings.data_dir}; start the server with the same master key")
