"""packaging/docker-compose.yml and packaging/Caddyfile, validated by the real tools:
``docker compose config`` (or ``docker-compose config``) and ``caddy validate``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.packaging.tools import PACKAGING, compose_command, require, run

ROOT = PACKAGING.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """packaging/ with .env made from .env.example, beside a Dockerfile, as an operator has it."""
    shutil.copytree(PACKAGING, tmp_path / "packaging")
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    shutil.copy(tmp_path / "packaging" / ".env.example", tmp_path / "packaging" / ".env")
    return tmp_path / "packaging"


def config(project: Path) -> dict:
    done = run([*compose_command(), "-f", "docker-compose.yml", "config"], cwd=project)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_config_accepts_the_file_and_resolves_the_settings(project: Path) -> None:
    resolved = config(project)
    assert set(resolved["services"]) == {"appliance", "caddy"}
    appliance, caddy = resolved["services"]["appliance"], resolved["services"]["caddy"]
    assert appliance["environment"]["AAT_PUBLIC_URL"] == "https://chat.example.com"
    assert appliance["environment"]["AAT_HOST"] == "0.0.0.0"
    assert "ports" not in appliance  # only Caddy is published
    assert appliance["read_only"] is True and appliance["cap_drop"] == ["ALL"]
    assert appliance["security_opt"] == ["no-new-privileges:true"]
    # v1 prints short syntax ("aat-data:/data:rw"), the v2 plugin long syntax ({"source", "target"}).
    targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in appliance["volumes"]}
    assert targets == {"/data", "/backups"}
    assert caddy["depends_on"]["appliance"]["condition"] == "service_healthy"
    published = {str(p.get("published", p)) if isinstance(p, dict) else p.split(":")[0] for p in caddy["ports"]}
    assert published == {"80", "443"}
    assert set(resolved["volumes"]) == {"aat-data", "aat-backups", "caddy-data", "caddy-config"}


def test_compose_config_refuses_a_missing_domain(project: Path) -> None:
    env = project / ".env"
    env.write_text(env.read_text().replace("DOMAIN=chat.example.com\n", ""))
    done = run([*compose_command(), "-f", "docker-compose.yml", "config"], cwd=project)
    assert done.returncode != 0
    assert "set DOMAIN in .env" in done.stderr


def test_compose_config_refuses_an_invalid_file(project: Path) -> None:
    (project / "docker-compose.yml").write_text((project / "docker-compose.yml").read_text().replace(
        "    read_only: true", "    read_only: [yes]"))
    done = run([*compose_command(), "-f", "docker-compose.yml", "config"], cwd=project)
    assert done.returncode != 0


def test_caddy_validates_the_caddyfile(project: Path, tmp_path: Path) -> None:
    caddy = require("caddy", "caddy")
    env = {"DOMAIN": "chat.example.com", "ACME_EMAIL": "ops@example.com", "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = run([caddy, "validate", "--config", "Caddyfile", "--adapter", "caddyfile"], cwd=project, **env)
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stdout + done.stderr
    adapted = run([caddy, "adapt", "--config", "Caddyfile", "--adapter", "caddyfile"], cwd=project, **env)
    assert '"dial":"appliance:8000"' in adapted.stdout and '"chat.example.com"' in adapted.stdout
    (project / "Caddyfile").write_text((project / "Caddyfile").read_text().replace("flush_interval -1",
                                                                                   "flush_every -1"))
    broken = run([caddy, "validate", "--config", "Caddyfile", "--adapter", "caddyfile"], cwd=project, **env)
    assert broken.returncode != 0
