"""LocalProvisioner's supervision of a tenant's process, with stand-in appliance executables
(shell scripts): however far a start or a restart has got, ``stop`` leaves no process behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from control_plane.provisioning.base import ProvisioningError, TenantSpec
from control_plane.provisioning.local import LocalProvisioner
from control_plane.settings import ControlPlaneSettings
from tests.control_plane.harness import CP_MASTER_KEY

SPEC = TenantSpec(id="t-local", name="Bakery", master_key="not-used", webhook_secret="not-used")


def _appliance(tmp_path: Path, script: str) -> Path:
    """An executable that stands in for ``aat-appliance`` (it ignores ``serve --port ...``)."""
    path = tmp_path / "appliance-stand-in"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def _children_running(executable: Path) -> list[int]:
    """Our child processes still running ``executable`` (or what it exec'ed), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, parent = fields[0], int(fields[1])
        if parent == os.getpid() and state != "Z" and f"AAT_DATA_DIR={executable.parent}".encode() in environ:
            found.append(int(entry.name))
    return found


def _provisioner(tmp_path: Path, http: httpx.AsyncClient, executable: Path, **options: object) -> LocalProvisioner:
    settings = ControlPlaneSettings(data_dir=tmp_path, master_key=CP_MASTER_KEY, meta_app_id="42")
    return LocalProvisioner(settings, http, appliance_bin=executable, **options)  # type: ignore[arg-type]


async def test_stopping_a_tenant_that_is_still_starting_ends_its_process(tmp_path: Path) -> None:
    executable = _appliance(tmp_path, "exec sleep 60")  # never answers /readyz
    async with httpx.AsyncClient() as http:
        provisioner = _provisioner(tmp_path, http, executable, ready_timeout=60)
        starting = asyncio.create_task(provisioner.start(SPEC))
        while provisioner.pid(SPEC.id) is None:
            await asyncio.sleep(0.02)
        pid = provisioner.pid(SPEC.id)
        assert _children_running(executable) == [pid]
        await provisioner.stop(SPEC.id)
        with pytest.raises(ProvisioningError):
            await starting  # its supervisor ended
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]
    assert (provisioner.running(), _children_running(executable)) == ([], [])


@pytest.mark.parametrize("stop_after", [0.0, 0.01, 0.03, 0.05, 0.08, 0.13])
async def test_stopping_a_tenant_mid_restart_leaves_no_process(tmp_path: Path, stop_after: float) -> None:
    # The stand-in exits soon after each start, so the supervisor is always restarting it:
    # the stop lands while a process is being spawned, probed or waited for.
    executable = _appliance(tmp_path, "sleep 0.04; exit 1")
    async with httpx.AsyncClient() as http:
        provisioner = _provisioner(tmp_path, http, executable, ready_timeout=60, backoff=(0.0,))
        starting = asyncio.create_task(provisioner.start(SPEC))
        while provisioner.pid(SPEC.id) is None:
            await asyncio.sleep(0.005)
        await asyncio.sleep(stop_after)
        await provisioner.stop(SPEC.id)
        with pytest.raises(ProvisioningError):
            await starting
    assert (provisioner.running(), _children_running(executable)) == ([], [])


async def test_a_cancelled_command_does_not_outlive_its_caller(tmp_path: Path) -> None:
    executable = _appliance(tmp_path, "exec sleep 60")
    async with httpx.AsyncClient() as http:
        provisioner = _provisioner(tmp_path, http, executable)
        provisioner.data_dir(SPEC.id).mkdir(parents=True)  # as provision() leaves it
        command = asyncio.create_task(provisioner.exec(SPEC, ["aat-appliance", "export", "--out", "x"]))
        while not _children_running(executable):
            await asyncio.sleep(0.02)
        command.cancel()
        with pytest.raises(asyncio.CancelledError):
            await command
    assert _children_running(executable) == []
