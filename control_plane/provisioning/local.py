"""``local``: one ``aat-appliance serve`` process per tenant on this host (the embedded default
and the test backend).

- Each tenant has ``DATA_DIR/tenants/<id>/``: ``data/`` (the appliance's data dir: encrypted
  database, wrapped data key, queue) and ``appliance.log`` (its stdout and stderr).
- Its process listens on a loopback port of its own (kept across restarts when still free),
  with its own master key and webhook secret in its environment, and nothing else of the
  control plane's (every ``AAT_`` variable of the control plane is left out).
- A supervisor task per tenant restarts a process that exits unexpectedly (backoff 0.5 s
  doubling to 30 s) and tells the listeners when the tenant goes down and comes back (the
  router then retries that tenant's queue at once instead of waiting for its schedule).
- Children get ``PR_SET_PDEATHSIG``: if the control plane is killed, its appliances get
  SIGTERM instead of lingering and holding their data dirs. ``close()`` stops them all cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from control_plane.provisioning.base import (
    Endpoint, ExecResult, ProvisioningError, ReadyListener, TenantSpec, tenant_env,
)
from control_plane.settings import ControlPlaneSettings

__all__ = ["LocalProvisioner", "free_port"]

log = logging.getLogger("aat.cp.local")

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Tenant:
    spec: TenantSpec
    port: int
    proc: asyncio.subprocess.Process | None = None
    supervisor: asyncio.Task[None] | None = None
    stopping: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0


class LocalProvisioner:
    name = "local"

    def __init__(self, settings: ControlPlaneSettings, http: httpx.AsyncClient, *,
                 appliance_bin: Path | None = None, ready_timeout: float = READY_TIMEOUT,
                 backoff: tuple[float, ...] = BACKOFF) -> None:
        self.root = settings.tenants_dir()
        self.http = http
        self.bin = appliance_bin or Path(sys.prefix) / "bin" / "aat-appliance"
        self.ready_timeout = ready_timeout
        self.backoff = backoff
        self._tenants: dict[str, _Tenant] = {}
        self._listeners: list[ReadyListener] = []

    # --- paths and environment ----------------------------------------------------------------
    def tenant_dir(self, tenant_id: str) -> Path:
        return self.root / tenant_id

    def data_dir(self, tenant_id: str) -> Path:
        return self.tenant_dir(tenant_id) / "data"

    def _env(self, spec: TenantSpec, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
        env.update({k: v for k, v in tenant_env(spec, public_url=f"http://127.0.0.1:{port}").items() if v})
        env.update(AAT_DATA_DIR=str(self.data_dir(spec.id)), AAT_HOST="127.0.0.1", AAT_PORT=str(port),
                   PYTHONUNBUFFERED="1")
        return env

    def _argv(self, argv: list[str]) -> list[str]:
        if argv and argv[0] == "aat-appliance":
            return [str(self.bin), *argv[1:]]
        if argv and argv[0] == "python":
            return [sys.executable, *argv[1:]]
        return argv

    def on_ready(self, listener: ReadyListener) -> None:
        self._listeners.append(listener)

    async def _tell(self, tenant_id: str, ready: bool) -> None:
        for listener in self._listeners:
            try:
                result = listener(tenant_id, ready)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # noqa: BLE001 - a listener never stops supervision
                log.exception("ready listener failed", extra={"tenant": tenant_id})

    # --- the interface ------------------------------------------------------------------------
    async def provision(self, spec: TenantSpec) -> Endpoint:
        self.data_dir(spec.id).mkdir(parents=True, exist_ok=True, mode=0o700)
        return await self.start(spec)

    async def restore(self, spec: TenantSpec, source: Path, passphrase: str) -> None:
        self.data_dir(spec.id).mkdir(parents=True, exist_ok=True, mode=0o700)
        result = await self._run(spec, 0, ["aat-appliance", "import", str(source.resolve()), "--passphrase-stdin"],
                                 passphrase.encode())
        result.check("importing the workspace")

    async def start(self, spec: TenantSpec) -> Endpoint:
        tenant = self._tenants.get(spec.id)
        if tenant is None or tenant.supervisor is None or tenant.supervisor.done():
            port = spec.port if spec.port and _port_free(spec.port) else free_port()
            tenant = _Tenant(spec=spec, port=port)
            self._tenants[spec.id] = tenant
            tenant.supervisor = asyncio.create_task(self._supervise(tenant), name=f"tenant-{spec.id}")
        try:
            await asyncio.wait_for(self._wait_ready(tenant), self.ready_timeout)
        except TimeoutError as exc:
            raise ProvisioningError(f"tenant {spec.id}'s appliance did not become ready in "
                                    f"{self.ready_timeout:.0f} s; see {self.tenant_dir(spec.id) / 'appliance.log'}") from exc
        return Endpoint(url=f"http://127.0.0.1:{tenant.port}", port=tenant.port)

    async def _wait_ready(self, tenant: _Tenant) -> None:
        while not tenant.ready.is_set():
            if tenant.supervisor is not None and tenant.supervisor.done():
                raise ProvisioningError(f"tenant {tenant.spec.id}'s supervisor ended")
            await asyncio.sleep(0.05)

    async def stop(self, tenant_id: str) -> None:
        tenant = self._tenants.pop(tenant_id, None)
        if tenant is None:
            return
        tenant.stopping = True
        if tenant.supervisor is not None:
            # The supervisor stops the process it holds as it ends (_supervise), also one it
            # started a moment ago: stopping that process first could miss one being spawned.
            tenant.supervisor.cancel()
            await asyncio.gather(tenant.supervisor, return_exceptions=True)
        await self._terminate(tenant)  # nothing left to stop once the supervisor has ended
        await self._tell(tenant_id, False)

    async def teardown(self, tenant_id: str) -> None:
        await self.stop(tenant_id)
        tenant_dir = self.tenant_dir(tenant_id)
        data_dir = self.data_dir(tenant_id)
        if data_dir.is_dir():
            # Crypto-shred first (the appliance's own command: needs no master key), then remove.
            spec = TenantSpec(id=tenant_id, name="", master_key="", webhook_secret="")
            result = await self._run(spec, 0, ["aat-appliance", "destroy", "--yes"])
            result.check("destroying the workspace")
        if tenant_dir.exists():
            await asyncio.to_thread(shutil.rmtree, tenant_dir)

    async def exec(self, spec: TenantSpec, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        tenant = self._tenants.get(spec.id)
        return await self._run(spec, tenant.port if tenant else (spec.port or 0), argv, stdin)

    async def export(self, spec: TenantSpec, out: Path, passphrase: str) -> None:
        result = await self.exec(spec, ["aat-appliance", "export", "--out", str(out), "--passphrase-stdin"],
                                 passphrase.encode())
        result.check("exporting the workspace")

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(tid) for tid in list(self._tenants)), return_exceptions=True)

    def pid(self, tenant_id: str) -> int | None:
        """The process id of a tenant's running appliance (tests kill it)."""
        tenant = self._tenants.get(tenant_id)
        return tenant.proc.pid if tenant and tenant.proc and tenant.proc.returncode is None else None

    def running(self) -> list[str]:
        return [tid for tid, t in self._tenants.items() if t.proc is not None and t.proc.returncode is None]

    # --- processes ------------------------------------------------------------------------------
    async def _run(self, spec: TenantSpec, port: int, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        proc = await asyncio.create_subprocess_exec(
            *self._argv(argv), env=self._env(spec, port), cwd=str(self.root),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), 300)
        except BaseException:  # a timeout, or the caller cancelled: the command goes with it
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            raise
        return ExecResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    async def _spawn(self, tenant: _Tenant) -> asyncio.subprocess.Process:
        tenant_dir = self.tenant_dir(tenant.spec.id)
        tenant_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(tenant_dir / "appliance.log", "ab") as logfile:
            return await asyncio.create_subprocess_exec(
                str(self.bin), "serve", "--port", str(tenant.port), "--host", "127.0.0.1",
                env=self._env(tenant.spec, tenant.port), cwd=str(tenant_dir),
                stdin=asyncio.subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                start_new_session=True, preexec_fn=_die_with_parent,
            )

    async def _probe(self, tenant: _Tenant) -> bool:
        try:
            response = await self.http.get(f"http://127.0.0.1:{tenant.port}/readyz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _supervise(self, tenant: _Tenant) -> None:
        """Run the tenant's appliance, restarting it when it exits, until stopped; however it
        ends (cancelled by :meth:`stop` included), the process it started is stopped too."""
        try:
            await self._keep_running(tenant)
        finally:
            await self._terminate(tenant)

    async def _keep_running(self, tenant: _Tenant) -> None:
        tid = tenant.spec.id
        while not tenant.stopping:
            started = time.monotonic()
            tenant.proc = await self._spawn(tenant)
            log.info("appliance started", extra={"tenant": tid, "pid": tenant.proc.pid, "port": tenant.port})
            waiter = asyncio.create_task(tenant.proc.wait())
            while not waiter.done() and not tenant.ready.is_set():
                if await self._probe(tenant):
                    tenant.ready.set()
                    await self._tell(tid, True)
                    break
                await asyncio.sleep(0.05)
            code = await waiter
            tenant.ready.clear()
            if tenant.stopping:
                return
            log.warning("appliance exited", extra={"tenant": tid, "exit_code": code})
            await self._tell(tid, False)
            # A crash right after start backs off further each time; a long run resets it.
            tenant.restarts = 0 if time.monotonic() - started > 60 else tenant.restarts + 1
            await asyncio.sleep(self.backoff[min(tenant.restarts, len(self.backoff) - 1)])

    async def _terminate(self, tenant: _Tenant) -> None:
        proc = tenant.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        tenant.ready.clear()
