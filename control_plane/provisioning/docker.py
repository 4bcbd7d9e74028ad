"""``docker``: one container and one named volume per tenant, through the Docker Engine API
(the ``docker`` SDK; ``AAT_CP_DOCKER_URL``).

Per tenant ``t…``:

- volume ``aat-<id>-data`` mounted at ``/data`` (the appliance's data dir);
- container ``aat-<id>`` from ``AAT_CP_APPLIANCE_IMAGE`` on network ``AAT_CP_DOCKER_NETWORK``
  (the control plane reaches it at ``http://aat-<id>:8000``; no port is published), with
  labels (``org.aatsystems.*``), a health check on ``/readyz``, memory, CPU and process limits,
  ``no-new-privileges``, every capability dropped, a read-only root filesystem (``/tmp`` in
  memory), the image's non-root user, and restart ``unless-stopped``. Its secrets (master key,
  webhook secret) are passed as environment variables: the Docker Engine has no secret store
  outside Swarm, so whoever can inspect containers on that engine can read them.
- Teardown: the container goes, then a one-off container with the same volume runs
  ``aat-appliance destroy --yes`` (crypto-shredding the wrapped data key), then the volume goes.
- Commands (tokens, exports) run with ``exec`` in the tenant's container; an export is copied
  out with the archive API.

The SDK is synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import tarfile
import time
from pathlib import Path
from typing import Any

from control_plane.provisioning.base import (
    APPLIANCE_PORT, Endpoint, ExecResult, ProvisioningError, ReadyListener, TenantSpec, tenant_env,
)
from control_plane.settings import ControlPlaneSettings

__all__ = ["DockerProvisioner", "container_name", "volume_name", "LABEL"]

LABEL = "org.aatsystems"
READY_TIMEOUT = 120.0
HEALTHCHECK = ["CMD", "python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen("
               f"'http://127.0.0.1:{APPLIANCE_PORT}/readyz', timeout=4).status == 200 else 1)"]


def container_name(tenant_id: str) -> str:
    return f"aat-{tenant_id}"


def volume_name(tenant_id: str) -> str:
    return f"aat-{tenant_id}-data"


class DockerProvisioner:
    name = "docker"

    def __init__(self, settings: ControlPlaneSettings, *, client: Any = None, ready_timeout: float = READY_TIMEOUT) -> None:
        self.settings = settings
        self.ready_timeout = ready_timeout
        self._client = client
        self._listeners: list[ReadyListener] = []

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker

            self._client = docker.DockerClient(base_url=self.settings.docker_url, version="1.44", timeout=60)
        return self._client

    def on_ready(self, listener: ReadyListener) -> None:
        self._listeners.append(listener)

    def _labels(self, tenant_id: str) -> dict[str, str]:
        return {f"{LABEL}.tenant": tenant_id, f"{LABEL}.role": "appliance", f"{LABEL}.managed-by": "aat-control-plane"}

    def _endpoint(self, tenant_id: str) -> Endpoint:
        return Endpoint(url=f"http://{container_name(tenant_id)}:{APPLIANCE_PORT}")

    # --- the interface ------------------------------------------------------------------------
    async def provision(self, spec: TenantSpec) -> Endpoint:
        await asyncio.to_thread(self._ensure_volume, spec.id)
        return await self.start(spec)

    async def start(self, spec: TenantSpec) -> Endpoint:
        await asyncio.to_thread(self._ensure_running, spec)
        await self._wait_healthy(spec.id)
        return self._endpoint(spec.id)

    async def stop(self, tenant_id: str) -> None:
        await asyncio.to_thread(self._stop, tenant_id)

    async def teardown(self, tenant_id: str) -> None:
        await asyncio.to_thread(self._teardown, tenant_id)

    async def exec(self, spec: TenantSpec, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        return await asyncio.to_thread(self._exec, spec.id, argv, stdin)

    async def export(self, spec: TenantSpec, out: Path, passphrase: str) -> None:
        inside = f"/data/.export-{secrets.token_hex(6)}.aatx"
        result = await self.exec(spec, ["aat-appliance", "export", "--out", inside, "--passphrase-stdin"],
                                 passphrase.encode())
        try:
            result.check("exporting the workspace")
            await asyncio.to_thread(self._copy_out, spec.id, inside, out)
        finally:
            await self.exec(spec, ["rm", "-f", inside])

    async def restore(self, spec: TenantSpec, source: Path, passphrase: str) -> None:
        await asyncio.to_thread(self._restore, spec, source, passphrase)

    async def close(self) -> None:
        """Containers keep running without the control plane (the engine supervises them)."""

    # --- engine calls (worker threads) ------------------------------------------------------------
    def _ensure_network(self) -> None:
        from docker.errors import NotFound

        try:
            self.client.networks.get(self.settings.docker_network)
        except NotFound:
            self.client.networks.create(self.settings.docker_network, driver="bridge",
                                        labels={f"{LABEL}.managed-by": "aat-control-plane"})

    def _ensure_volume(self, tenant_id: str) -> None:
        from docker.errors import NotFound

        try:
            self.client.volumes.get(volume_name(tenant_id))
        except NotFound:
            self.client.volumes.create(name=volume_name(tenant_id), labels=self._labels(tenant_id))

    def _container_config(self, spec: TenantSpec) -> dict[str, Any]:
        env = tenant_env(spec, public_url=self._endpoint(spec.id).url)
        env.update(AAT_DATA_DIR="/data", AAT_HOST="0.0.0.0", AAT_PORT=str(APPLIANCE_PORT))
        return dict(
            image=self.settings.appliance_image, command=["serve"], name=container_name(spec.id),
            environment=env, labels=self._labels(spec.id), network=self.settings.docker_network,
            volumes={volume_name(spec.id): {"bind": "/data", "mode": "rw"}},
            mem_limit=f"{self.settings.tenant_memory_mb}m", nano_cpus=int(self.settings.tenant_cpu * 1e9),
            pids_limit=256, read_only=True, tmpfs={"/tmp": "rw,size=64m,mode=1777"},
            security_opt=["no-new-privileges:true"], cap_drop=["ALL"], user="10001:10001",
            restart_policy={"Name": "unless-stopped"},
            healthcheck={"test": HEALTHCHECK, "interval": 10 * 10**9, "timeout": 5 * 10**9, "retries": 3,
                         "start_period": 30 * 10**9},
        )

    def _ensure_running(self, spec: TenantSpec) -> None:
        from docker.errors import NotFound

        self._ensure_network()
        self._ensure_volume(spec.id)
        try:
            container = self.client.containers.get(container_name(spec.id))
        except NotFound:
            container = self.client.containers.create(**self._container_config(spec))
        if container.status != "running":
            container.start()

    async def _wait_healthy(self, tenant_id: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            state = await asyncio.to_thread(self._state, tenant_id)
            health = (state.get("Health") or {}).get("Status")
            if state.get("Running") and health in ("healthy", None):
                return
            if state.get("Status") in ("exited", "dead"):
                raise ProvisioningError(f"tenant {tenant_id}'s container exited (code {state.get('ExitCode')})")
            await asyncio.sleep(0.5)
        raise ProvisioningError(f"tenant {tenant_id}'s container was not healthy in {self.ready_timeout:.0f} s")

    def _state(self, tenant_id: str) -> dict[str, Any]:
        container = self.client.containers.get(container_name(tenant_id))
        return dict(container.attrs.get("State") or {})

    def _stop(self, tenant_id: str) -> None:
        from docker.errors import NotFound

        try:
            self.client.containers.get(container_name(tenant_id)).stop(timeout=20)
        except NotFound:
            pass

    def _teardown(self, tenant_id: str) -> None:
        from docker.errors import NotFound

        try:
            container = self.client.containers.get(container_name(tenant_id))
            container.stop(timeout=20)
            container.remove(v=False)
        except NotFound:
            pass
        try:
            self.client.volumes.get(volume_name(tenant_id))
        except NotFound:
            return
        self._one_off(tenant_id, ["destroy", "--yes"], what="destroying the workspace")
        self.client.volumes.get(volume_name(tenant_id)).remove()

    def _one_off(self, tenant_id: str, command: list[str], *, what: str, environment: dict[str, str] | None = None,
                 entrypoint: list[str] | None = None, put: tuple[str, bytes] | None = None) -> None:
        """A short-lived container on the tenant's volume; raises when it fails."""
        container = self.client.containers.create(
            image=self.settings.appliance_image, command=command, entrypoint=entrypoint, environment=environment or {},
            volumes={volume_name(tenant_id): {"bind": "/data", "mode": "rw"}}, labels=self._labels(tenant_id),
            user="10001:10001", network_mode="none", security_opt=["no-new-privileges:true"], cap_drop=["ALL"])
        try:
            if put is not None:
                container.put_archive("/tmp", put[1])
            container.start()
            status = container.wait(timeout=600)
            if status.get("StatusCode", 1) != 0:
                raise ProvisioningError(f"{what} failed in a one-off container (exit {status.get('StatusCode')})")
        finally:
            container.remove(force=True)

    def _restore(self, spec: TenantSpec, source: Path, passphrase: str) -> None:
        self._ensure_volume(spec.id)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(str(source), arcname="import.aatx")
        env = tenant_env(spec, public_url="")
        env.update(AAT_DATA_DIR="/data", AAT_STDIN=passphrase)
        self._one_off(spec.id, ['printf %s "$AAT_STDIN" | aat-appliance import /tmp/import.aatx --passphrase-stdin'],
                      entrypoint=["sh", "-c"], environment=env, what="importing the workspace",
                      put=("import.aatx", buffer.getvalue()))

    def _exec(self, tenant_id: str, argv: list[str], stdin: bytes | None) -> ExecResult:
        command, environment = argv, None
        if stdin is not None:
            command = ["sh", "-c", 'printf %s "$AAT_STDIN" | "$@"', "sh", *argv]
            environment = {"AAT_STDIN": stdin.decode()}
        container = self.client.containers.get(container_name(tenant_id))
        code, (out, err) = container.exec_run(command, environment=environment, demux=True)
        return ExecResult(code or 0, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))

    def _copy_out(self, tenant_id: str, inside: str, out: Path) -> None:
        container = self.client.containers.get(container_name(tenant_id))
        stream, _ = container.get_archive(inside)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r") as tar:
            member = tar.getmembers()[0]
            data = tar.extractfile(member)
            if data is None:
                raise ProvisioningError("the export was not a file")
            with open(out, "xb") as fh:
                fh.write(data.read())
