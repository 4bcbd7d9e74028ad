"""What every ``aat-appliance`` command shares: the ``--data-dir`` option and reading the settings
with a command's own flags on top (used by appliance/cli.py and the command groups it adds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from appliance.settings import Settings

__all__ = ["data_dir_option", "settings_for"]


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    """``Settings`` from the environment and ``.env``, with the flags given (not ``None``) on top."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Workspace data directory (default: AAT_DATA_DIR or ./data).",
)
