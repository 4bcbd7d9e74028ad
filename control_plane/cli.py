"""``aat-control-plane``: ``migrate`` and ``serve`` (health only until the control-plane issue)."""

from __future__ import annotations

from pathlib import Path

import click

from control_plane.settings import ControlPlaneSettings

__all__ = ["main"]


def _settings(data_dir: Path | None, **overrides: object) -> ControlPlaneSettings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return ControlPlaneSettings(**values)


@click.group()
def main() -> None:
    """AAT control plane."""


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def migrate(data_dir: Path | None) -> None:
    """Apply pending control-plane migrations."""
    from appliance.store.keys import DataKeyFile, load_master_key
    from appliance.store.connection import connect
    from appliance.store.gateway import wrap_database
    from appliance.store.migrate import apply_migrations

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    master = load_master_key(
        env_value=settings.master_key.get_secret_value() if settings.master_key else None,
        file_path=None, data_dir=settings.data_dir,
    )
    keys = DataKeyFile(settings.data_dir)
    data_key = keys.load(master) if keys.exists() else keys.create(master)
    conn = connect(settings.data_dir / "control-plane.db", data_key)
    try:
        applied = apply_migrations(wrap_database(conn), "control_plane")
    finally:
        conn.close()
    click.echo(f"applied {len(applied)} migration(s)")


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def serve(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Serve the control plane."""
    import uvicorn

    from appliance.logs import configure_logging
    from control_plane.app import create_app

    settings = _settings(data_dir, host=host, port=port)
    configure_logging("info")
    uvicorn.run(create_app(), host=settings.host, port=settings.port, log_config=None,
                access_log=False, server_header=False)
