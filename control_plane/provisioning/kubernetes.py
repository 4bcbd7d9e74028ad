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
- **Commands** (API tokens, exports) run with the pod exec API (``kubernetes.stream``) in the
  tenant's pod ``aat-<id>-0``.
- **Files while no appliance runs** (``restore``: ``tenants import``; ``export`` of a suspended
  tenant) go through a one-pod **workspace Job** (``manifests.workspace_manifests``): the Secret,
  the claim ``data-aat-<id>-0`` (the very claim the StatefulSet adopts for its pod 0) and a Job
  whose pod mounts it and waits. The control plane then uses the exec API in that pod: an import
  file travels in base64 on stdin (``head -c <length> | base64 -d``: the exec protocol cannot
  close stdin portably, so the length ends it), is checked by SHA-256, and ``aat-appliance
  import`` runs on it with the passphrase; an export travels back base64-encoded on stdout,
  exactly as from a running pod. Then the pod is told it is done, the Job is deleted and the
  control plane waits until it is gone (a ReadWriteOnce claim is attached to one node at a
  time), so the StatefulSet's first pod finds the claim free. A failed import removes what it
  created (Secret, claim, Job): the tenant was never recorded, so nothing else would.

Tests point ``AAT_CP_KUBE_API_URL`` at a stand-in of the API server; in a cluster the pod's
service account is used, elsewhere the kubeconfig.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from control_plane.provisioning.base import (
    Endpoint,
    ExecResult,
    ProvisioningError,
    ReadyListener,
    TenantSpec,
)
from control_plane.provisioning.manifests import (
    DONE_MARK,
    claim_name,
    job_labels,
    job_name,
    object_name,
    secret_name,
    service_url,
    tenant_manifests,
    workspace_manifests,
)
from control_plane.settings import ControlPlaneSettings

__all__ = ["KubernetesProvisioner"]

READY_TIMEOUT = 300.0
POD_TIMEOUT = 300.0   # a workspace Job's pod scheduled, its image pulled, running
GONE_TIMEOUT = 120.0  # a deleted workspace Job and its pod gone (the claim free again)
UPLOAD = "/data/.import.aatx"
CHUNK = 48 * 1024     # base64 characters per stdin frame
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
                         "batch": client.BatchV1Api(api), "net": client.NetworkingV1Api(api), "api": api}
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
        """From the running pod, or (suspended: no pod) from a workspace Job on its claim."""
        if await asyncio.to_thread(self._ready_replicas, spec.id) >= 1:
            await self._export_in(f"{object_name(spec.id)}-0", "appliance", out, passphrase)
            return
        async with self._workspace(spec, "export") as pod:
            await self._export_in(pod, "workspace", out, passphrase)

    async def restore(self, spec: TenantSpec, source: Path, passphrase: str) -> None:
        """Fill the new tenant's claim from ``source`` in a workspace Job (see the module docstring)."""
        data = source.read_bytes()
        try:
            async with self._workspace(spec, "import") as pod:
                await asyncio.to_thread(self._upload, pod, data)
                result = await asyncio.to_thread(self._exec_in, pod, "workspace", ["sha256sum", UPLOAD], None)
                digest = (result.check("checking the uploaded export").stdout.split() or [""])[0]
                if digest != hashlib.sha256(data).hexdigest():
                    raise ProvisioningError("the export arrived altered in the import pod (SHA-256 differs)")
                (await asyncio.to_thread(
                    self._exec_in, pod, "workspace",
                    ["aat-appliance", "import", UPLOAD, "--passphrase-stdin"], passphrase.encode(),
                )).check("importing the workspace")
        except BaseException:
            await asyncio.to_thread(self._teardown, spec.id)  # never recorded: nothing else would remove it
            raise

    async def close(self) -> None:
        if self._api is not None:
            self._api["api"].close()

    # --- the workspace Job -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _workspace(self, spec: TenantSpec, purpose: str) -> AsyncIterator[str]:
        """The running pod of a workspace Job on the tenant's claim; deleted (and gone) after."""
        for manifest in workspace_manifests(self.settings, spec, purpose):
            await asyncio.to_thread(self._apply, manifest)
        try:
            yield await self._job_pod(spec.id, purpose)
        finally:
            await asyncio.to_thread(self._finish_job, spec.id, purpose)
            await self._job_gone(spec.id, purpose)

    async def _job_pod(self, tenant_id: str, purpose: str) -> str:
        selector = ",".join(f"{k}={v}" for k, v in job_labels(tenant_id, purpose).items()
                            if k == "app.kubernetes.io/instance")
        deadline = time.monotonic() + POD_TIMEOUT
        while time.monotonic() < deadline:
            pods = await asyncio.to_thread(self._client()["core"].list_namespaced_pod, self.namespace,
                                           label_selector=selector)
            for pod in pods.items:
                phase = pod.status.phase if pod.status else None
                if phase == "Running":
                    return str(pod.metadata.name)
                if phase in ("Failed", "Succeeded"):
                    raise ProvisioningError(f"the {purpose} pod of tenant {tenant_id} ended before its work ({phase})")
            await asyncio.sleep(1.0)
        raise ProvisioningError(f"the {purpose} pod of tenant {tenant_id} was not running in {POD_TIMEOUT:.0f} s")

    def _finish_job(self, tenant_id: str, purpose: str) -> None:
        from kubernetes.client.exceptions import ApiException

        name = job_name(tenant_id, purpose)
        # Best effort (the pod may be gone or not yet running): deleting the Job stops it anyway.
        with contextlib.suppress(Exception):
            for pod in self._client()["core"].list_namespaced_pod(
                    self.namespace, label_selector=f"app.kubernetes.io/instance={name}").items:
                self._exec_in(pod.metadata.name, "workspace", ["sh", "-c", f"rm -f {UPLOAD}; touch {DONE_MARK}"], None)
        try:
            self._client()["batch"].delete_namespaced_job(name, self.namespace, propagation_policy="Foreground")
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _job_gone(self, tenant_id: str, purpose: str) -> None:
        """Foreground deletion: the Job stays visible until its pod is gone."""
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + GONE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                await asyncio.to_thread(self._client()["batch"].read_namespaced_job, job_name(tenant_id, purpose),
                                        self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            await asyncio.sleep(1.0)
        raise ProvisioningError(f"the {purpose} Job of tenant {tenant_id} was not gone in {GONE_TIMEOUT:.0f} s")

    async def _export_in(self, pod: str, container: str, out: Path, passphrase: str) -> None:
        inside = f"/data/.export-{secrets.token_hex(6)}.aatx"
        try:
            (await asyncio.to_thread(self._exec_in, pod, container,
                                     ["aat-appliance", "export", "--out", inside, "--passphrase-stdin"],
                                     passphrase.encode())).check("exporting the workspace")
            result = (await asyncio.to_thread(self._exec_in, pod, container, ["base64", inside], None)
                      ).check("reading the export")
            out.write_bytes(base64.b64decode(result.stdout))
        finally:
            await asyncio.to_thread(self._exec_in, pod, container, ["rm", "-f", inside], None)

    # --- API calls (worker threads) ---------------------------------------------------------------
    def _apply(self, manifest: dict[str, Any]) -> None:
        api = self._client()
        name, kind = manifest["metadata"]["name"], manifest["kind"]
        call = {"Secret": api["core"].patch_namespaced_secret, "Service": api["core"].patch_namespaced_service,
                "PersistentVolumeClaim": api["core"].patch_namespaced_persistent_volume_claim,
                "StatefulSet": api["apps"].patch_namespaced_stateful_set, "Job": api["batch"].patch_namespaced_job,
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
            lambda: api["core"].delete_namespaced_persistent_volume_claim(claim_name(tenant_id), self.namespace),
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
        return self._exec_in(f"{object_name(tenant_id)}-0", "appliance", argv, stdin)

    def _exec_in(self, pod: str, container: str, argv: list[str], stdin: bytes | None,
                 stream_in: bytes | None = None) -> ExecResult:
        """Run ``argv`` in ``pod``. ``stdin`` (small: a passphrase) travels as an argument of
        ``sh -c`` (visible only inside that container) and is piped from there, since the exec API
        has no portable way to close stdin; ``stream_in`` (large) is written to the exec's stdin,
        for a command that knows where it ends."""
        from kubernetes.stream import stream

        api = self._client()
        command = argv if stdin is None else ["sh", "-c", 'printf %s "$0" | "$@"', stdin.decode(), *argv]
        ws = stream(api["core"].connect_get_namespaced_pod_exec, pod, self.namespace,
                    container=container, command=command, stdin=stream_in is not None, stdout=True, stderr=True,
                    tty=False, _preload_content=False)
        try:
            out, err = [], []
            if stream_in is not None:
                for start in range(0, len(stream_in), CHUNK):
                    ws.write_stdin(stream_in[start:start + CHUNK].decode("ascii"))
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

    def _upload(self, pod: str, data: bytes) -> None:
        """``data`` to ``UPLOAD`` in the workspace pod, in base64 on stdin, ended by its length."""
        encoded = base64.b64encode(data)
        script = f'head -c "$0" | base64 -d > {UPLOAD}.part && mv {UPLOAD}.part {UPLOAD}'
        self._exec_in(pod, "workspace", ["sh", "-c", script, str(len(encoded))], None,
                      stream_in=encoded).check("uploading the export")
