"""packaging/systemd/aat-appliance.service: ``systemd-analyze verify`` and the hardening keys."""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

from tests.packaging.tools import PACKAGING, require, run

UNIT = PACKAGING / "systemd" / "aat-appliance.service"
BIN = Path(sys.prefix) / "bin" / "aat-appliance"


def staged(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this checkout's aat-appliance (verify checks that the
    binary exists; /opt/aat is where an operator installs it)."""
    unit = tmp_path / "aat-appliance.service"
    unit.write_text((text or UNIT.read_text()).replace("/opt/aat/bin/aat-appliance", str(BIN)))
    return unit


def service_section() -> dict[str, list[str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().split("[Service]", 1)[1].split("[Install]", 1)[0].splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = require("systemd-analyze", "systemd")
    done = run([tool, "verify", str(staged(tmp_path))], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_systemd_analyze_verify_refuses_a_broken_unit(tmp_path: Path) -> None:
    tool = require("systemd-analyze", "systemd")
    broken = UNIT.read_text().replace("ExecStart=/opt/aat/bin/aat-appliance serve", "ExecStart=aat appliance")
    done = run([tool, "verify", str(staged(tmp_path, broken))], cwd=tmp_path)
    assert done.returncode != 0


def test_the_unit_is_hardened_and_runs_as_its_own_user(tmp_path: Path) -> None:
    service = service_section()
    expected = {
        "User": ["aat"], "Group": ["aat"], "NoNewPrivileges": ["yes"], "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"], "PrivateTmp": ["yes"], "PrivateDevices": ["yes"], "CapabilityBoundingSet": [""],
        "StateDirectory": ["aat"], "StateDirectoryMode": ["0700"], "UMask": ["0077"], "Restart": ["on-failure"],
    }
    assert {k: service.get(k) for k in expected} == expected
    assert service["ExecStart"] == ["/opt/aat/bin/aat-appliance serve"]
    assert service["LoadCredential"] == ["master.key:/etc/aat/master.key"]
    assert "AAT_MASTER_KEY_FILE=%d/master.key" in service["Environment"]
    tool = require("systemd-analyze", "systemd")
    score = run([tool, "security", "--offline=yes", str(staged(tmp_path))], cwd=tmp_path)
    line = [ln for ln in score.stdout.splitlines() if "Overall exposure level" in ln][0]
    assert float(line.split(":")[1].split()[0]) <= 2.0, line  # systemd rates 0-2 as "OK"
