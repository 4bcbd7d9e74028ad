"""Which validator is on this machine: each test picks the real tool at run time and fails
(never skips) when none is there, saying what to install (scripts/test installs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def compose_command() -> list[str]:
    """``docker compose`` (the v2 plugin) when it answers, else ``docker-compose``."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError("no compose CLI to validate packaging/docker-compose.yml: install Debian's "
                         "docker-compose (scripts/test does) or the docker compose plugin")


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is needed to validate the packaging: install Debian's {package} (scripts/test does)"
    return path


def run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
