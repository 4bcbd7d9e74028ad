"""``kubernetes``: per tenant a Secret, a StatefulSet (one replica, its own volume claim), a
Service and a NetworkPolicy (``manifests.tenant_manifests``), through the official client.

- **Apply** is server-side apply (``PATCH`` with ``application/apply-patch+yaml``, field
  manager ``aat-control-plane``, forced): one idempotent request per object that creates or
  updates it, so converging again after a crash is safe.
- **Ready** when the StatefulSet reports one ready replica (its readiness probe is ``/readyz``).
- **Suspend** scales the StatefulSet to 0 (the claim is retained: ``whenScaled: Retain``).
- **Teardown** deletes the Secret first (the master key is gone from the cluster; the control
  plane forgets its copy too, so the wrapped data key on the volume can never be opened again),
  then the StatefulSet (``whenDeleted: Delete`` removes the claim; the claim is also deleted by
  name in case the cluster predates the retention policy), the Service and the NetworkPolicy.
- **Commands** (API tokens, exports) run with the pod exec API (``kubernetes.stream``); an
  export travels back base64-encoded on stdout. Import into a new tenant is not implemented for
  this backend yet (it needs a restore Job on the new claim).

Tests point ``AAT_CP_KUBE_API_URL`` at a stand-in of the API server; in a cluster the pod's
service account is used, elsewhere the kubeconfig.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from pathlib import Path
from typing import Any

from appliance.errors import Unprocessable
from control_plane.provisioning.base import Endpoint, ExecResult, ProvisioningError, ReadyListener, TenantSpec
from control_plane.provisioning.manifests import object_name, secret_name, service_url, tenant_manifests
from control_plane.settings import ControlPlaneSettings

__all__ = ["KubernetesProvisioner"]

READY_TIMEOUT = 300.0
APPLY = "application/apply-patch+yaml"
MANAGER = "aat-control-plane"


class KubernetesProvisioner:
    name = "kubernetes"

    def __init__(self, settings: ControlPlaneSettings, *, ready_timeout: float = READY_TIMEOUT) -> None:
        self.settings = settings
        self.namespace = settings.kube_namespace
        self.ready_timeout = ready_timeout
        self._api: Any = None
        self._listeners: list[ReadyListener] = []

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            if self.settings.kube_api_url:
                configuration = client.Configuration()
                configuration.host = self.settings.kube_api_url
                api = client.ApiClient(configuration)
            else:
                try:
                    config.load_incluster_config()
                except config.ConfigException:
                    config.load_kube_config()
                api = client.ApiClient()
            self._api = {"core": client.CoreV1Api(api), "apps": client.AppsV1Api(api),
                         "net": client.NetworkingV1Api(api), "api": api}
        return self._api

    def on_ready(self, listener: ReadyListener) -> None:
        self._listeners.append(listener)

    # --- the interface ------------------------------------------------------------------------
    async def provision(self, spec: TenantSpec) -> Endpoint:
        return await self.start(spec)

    async def start(self, spec: TenantSpec) -> Endpoint:
        await asyncio.to_thread(self._apply_all, spec, 1)
        await self._wait_ready(spec.id)
        return Endpoint(url=service_url(self.settings, spec.id))

    async def stop(self, tenant_id: str) -> None:
        await asyncio.to_thread(self._scale, tenant_id, 0)

    async def teardown(self, tenant_id: str) -> None:
        await asyncio.to_thread(self._teardown, tenant_id)

    async def exec(self, spec: TenantSpec, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        return await asyncio.to_thread(self._exec, spec.id, argv, stdin)

    async def export(self, spec: TenantSpec, out: Path, passphrase: str) -> None:
        inside = f"/data/.export-{secrets.token_hex(6)}.aatx"
        try:
            (await self.exec(spec, ["aat-appliance", "export", "--out", inside, "--passphrase-stdin"],
                             passphrase.encode())).check("exporting the workspace")
            result = (await self.exec(spec, ["base64", inside])).check("reading the export")
            out.write_bytes(base64.b64decode(result.stdout))
        finally:
            await self.exec(spec, ["rm", "-f", inside])

    async def restore(self, spec: TenantSpec, source: Path, passphrase: str) -> None:
        raise Unprocessable("importing a tenant is not implemented for the kubernetes provisioner yet",
                            code="not_implemented")

    async def close(self) -> None:
        if self._api is not None:
            self._api["api"].close()

    # --- API calls (worker threads) ---------------------------------------------------------------
    def _apply(self, manifest: dict[str, Any]) -> None:
        api = self._client()
        name, kind = manifest["metadata"]["name"], manifest["kind"]
        call = {"Secret": api["core"].patch_namespaced_secret, "Service": api["core"].patch_namespaced_service,
                "StatefulSet": api["apps"].patch_namespaced_stateful_set,
                "NetworkPolicy": api["net"].patch_namespaced_network_policy}[kind]
        call(name, self.namespace, manifest, field_manager=MANAGER, force=True, _content_type=APPLY)

    def _apply_all(self, spec: TenantSpec, replicas: int) -> None:
        for manifest in tenant_manifests(self.settings, spec, replicas=replicas):
            self._apply(manifest)

    def _scale(self, tenant_id: str, replicas: int) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._client()["apps"].patch_namespaced_stateful_set_scale(
                object_name(tenant_id), self.namespace, {"spec": {"replicas": replicas}})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _ready_replicas(self, tenant_id: str) -> int:
        status = self._client()["apps"].read_namespaced_stateful_set_status(object_name(tenant_id), self.namespace)
        return int(getattr(status.status, "ready_replicas", 0) or 0)

    async def _wait_ready(self, tenant_id: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if await asyncio.to_thread(self._ready_replicas, tenant_id) >= 1:
                return
            await asyncio.sleep(1.0)
        raise ProvisioningError(f"tenant {tenant_id}'s pod was not ready in {self.ready_timeout:.0f} s")

    def _teardown(self, tenant_id: str) -> None:
        from kubernetes.client.exceptions import ApiException

        api, name = self._client(), object_name(tenant_id)
        steps = [
            lambda: api["core"].delete_namespaced_secret(secret_name(tenant_id), self.namespace),
            lambda: api["apps"].delete_namespaced_stateful_set(name, self.namespace, propagation_policy="Foreground"),
            lambda: api["core"].delete_namespaced_persistent_volume_claim(f"data-{name}-0", self.namespace),
            lambda: api["core"].delete_namespaced_service(name, self.namespace),
            lambda: api["net"].delete_namespaced_network_policy(name, self.namespace),
        ]
        for step in steps:
            try:
                step()
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def _exec(self, tenant_id: str, argv: list[str], stdin: bytes | None) -> ExecResult:
        from kubernetes.stream import stream

        api = self._client()
        # The exec API has no portable way to close stdin, so input travels as an argument of
        # `sh -c` (visible only inside the tenant's own container) and is piped from there.
        command = argv if stdin is None else ["sh", "-c", 'printf %s "$0" | "$@"', stdin.decode(), *argv]
        ws = stream(api["core"].connect_get_namespaced_pod_exec, f"{object_name(tenant_id)}-0", self.namespace,
                    container="appliance", command=command, stdin=False, stdout=True, stderr=True,
                    tty=False, _preload_content=False)
        try:
            out, err = [], []
            while ws.is_open():
                ws.update(timeout=1)
                if ws.peek_stdout():
                    out.append(ws.read_stdout())
                if ws.peek_stderr():
                    err.append(ws.read_stderr())
            code = ws.returncode or 0
        finally:
            ws.close()
        return ExecResult(code, "".join(out), "".join(err))
