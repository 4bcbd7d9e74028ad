"""Import into a new kubernetes tenant, and export from a suspended one, through the workspace
Job on the tenant's claim, against the Kubernetes API stand-in (its pod exec over WebSocket
included): the exact API requests, the objects validated against the Kubernetes schemas, and
what ran in the Job's pod."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from appliance.errors import AatError
from control_plane.provisioning.base import TenantSpec
from control_plane.provisioning.kubernetes import KubernetesProvisioner
from control_plane.provisioning.manifests import (
    KUBE_VERSION,
    tenant_manifests,
    workspace_manifests,
)
from control_plane.settings import ControlPlaneSettings
from tests.control_plane.standins.kube_api import KubeStandIn

SPEC = TenantSpec(id="t00aa11bb22cc", name="Acme", master_key="bWFzdGVyLWtleQ==", webhook_secret="hooks-secret")
CLI = Path(sys.prefix) / "bin" / "aat-control-plane"
NS = "/api/v1/namespaces/tenants"
UPLOAD_SCRIPT = 'head -c "$0" | base64 -d > /data/.import.aatx.part && mv /data/.import.aatx.part /data/.import.aatx'
FINISH = ["sh", "-c", "rm -f /data/.import.aatx; touch /tmp/aat-done"]
EXPORT = b"AATX\x00export bytes \xff" * 5000  # ~100 KB: several stdin frames


class Container:
    """The workspace pod: what its commands do (``head -c N | base64 -d``, ``sha256sum``, the
    appliance's import/export), over a dict of files."""

    def __init__(self, *, import_fails: bool = False) -> None:
        self.files: dict[str, bytes] = {}
        self.import_fails = import_fails

    def __call__(self, pod: str, container: str, command: list[str],
                 read_stdin: Callable[[int], bytes]) -> tuple[int, bytes, bytes]:
        if command[:3] == ["sh", "-c", UPLOAD_SCRIPT]:
            self.files["/data/.import.aatx"] = base64.b64decode(read_stdin(int(command[3])))
            return 0, b"", b""
        if command[0] == "sha256sum":
            return 0, f"{hashlib.sha256(self.files[command[1]]).hexdigest()}  {command[1]}\n".encode(), b""
        if command[4:6] == ["aat-appliance", "import"]:
            if self.import_fails:
                return 1, b"", b"error: the passphrase does not open this export\n"
            return 0, b"imported\n", b""
        if command[4:6] == ["aat-appliance", "export"]:
            self.files[command[7]] = EXPORT
            return 0, b"", b""
        if command[0] == "base64":
            return 0, base64.encodebytes(self.files[command[1]]), b""
        return 0, b"", b""


@pytest.fixture
def settings(tmp_path: Path) -> ControlPlaneSettings:
    return ControlPlaneSettings(data_dir=tmp_path, provisioner="kubernetes", kube_api_url="http://unused",
                                kube_namespace="tenants", appliance_image="registry.test/aat-appliance:1.2",
                                kube_storage_class="fast", kube_storage_gb=2, tenant_memory_mb=512, tenant_cpu=0.5)


def _with(settings: ControlPlaneSettings, kube: KubeStandIn) -> KubernetesProvisioner:
    return KubernetesProvisioner(settings.model_copy(update={"kube_api_url": kube.url}), ready_timeout=5)


@pytest.mark.parametrize("version", [KUBE_VERSION, kubernetes_validate.latest_version()])
def test_workspace_objects_are_valid_and_the_claim_is_the_statefulsets_own(settings: ControlPlaneSettings,
                                                                         version: str) -> None:
    secret, claim, job = workspace_manifests(settings, SPEC, "import")
    for manifest in (secret, claim, job):
        kubernetes_validate.validate(manifest, version, strict=True)
    statefulset = tenant_manifests(settings, SPEC)[1]
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data-aat-t00aa11bb22cc-0"  # <template>-<statefulset>-<ordinal>
    assert claim["spec"] == template["spec"] and claim["metadata"]["labels"] == template["metadata"]["labels"]
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "aat-t00aa11bb22cc-import"
    assert statefulset["spec"]["selector"]["matchLabels"] != {
        "app.kubernetes.io/instance": pod["metadata"]["labels"]["app.kubernetes.io/instance"]}
    assert job["spec"]["backoffLimit"] == 0 and pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "data-aat-t00aa11bb22cc-0"}}
    (container,) = pod["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "aat-t00aa11bb22cc-keys"}}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_import_fills_the_claim_in_a_workspace_job_then_the_tenant_starts_on_it(settings: ControlPlaneSettings,
                                                                               tmp_path: Path) -> None:
    container = Container()
    kube = KubeStandIn(exec_handler=container).start()
    try:
        provisioner = _with(settings, kube)
        source = tmp_path / "acme.aatx"
        source.write_bytes(EXPORT)
        asyncio.run(provisioner.restore(SPEC, source, "correct horse"))
        restored = len(kube.requests)
        asyncio.run(provisioner.provision(SPEC))
        asyncio.run(provisioner.close())
    finally:
        kube.stop()
    job = "/apis/batch/v1/namespaces/tenants/jobs/aat-t00aa11bb22cc-import"
    pod = f"{NS}/pods/aat-t00aa11bb22cc-import-x1y2z/exec"
    assert [(r.method, r.path) for r in kube.requests[:restored]] == [
        ("PATCH", f"{NS}/secrets/aat-t00aa11bb22cc-keys"),
        ("PATCH", f"{NS}/persistentvolumeclaims/data-aat-t00aa11bb22cc-0"),
        ("PATCH", job),
        ("GET", f"{NS}/pods"),
        ("GET", pod), ("GET", pod), ("GET", pod),  # upload, check, import
        ("GET", f"{NS}/pods"), ("GET", pod),       # done
        ("DELETE", job),
        ("GET", job),                               # gone: the claim is free for the StatefulSet's pod
    ]
    applies = [r for r in kube.requests[:restored] if r.method == "PATCH"]
    for request, expected in zip(applies, workspace_manifests(provisioner.settings, SPEC, "import"), strict=True):
        assert request.content_type.startswith("application/apply-patch+yaml")
        assert request.query["fieldManager"] == ["aat-control-plane"] and request.body == expected
    assert kube.requests[3].query["labelSelector"] == ["app.kubernetes.io/instance=aat-t00aa11bb22cc-import"]
    delete = kube.requests[restored - 2]
    assert delete.query["propagationPolicy"] == ["Foreground"]
    upload, check, run, done = kube.execs
    assert upload.command == ["sh", "-c", UPLOAD_SCRIPT, str(len(base64.b64encode(EXPORT)))]
    assert upload.container == "workspace" and base64.b64decode(upload.stdin) == EXPORT
    assert container.files["/data/.import.aatx"] == EXPORT
    assert check.command == ["sha256sum", "/data/.import.aatx"]
    assert run.command == ["sh", "-c", 'printf %s "$0" | "$@"', "correct horse",
                           "aat-appliance", "import", "/data/.import.aatx", "--passphrase-stdin"]
    assert done.command == FINISH
    # then the tenant's own objects, the StatefulSet adopting the claim the import filled
    assert [r.path for r in kube.requests[restored:] if r.method == "PATCH"][1] == \
        "/apis/apps/v1/namespaces/tenants/statefulsets/aat-t00aa11bb22cc"
    assert sorted(kind for kind, _, _ in kube.objects) == [
        "networkpolicies", "persistentvolumeclaims", "secrets", "services", "statefulsets"]


def test_a_failed_import_says_why_and_leaves_nothing_behind(settings: ControlPlaneSettings, tmp_path: Path) -> None:
    kube = KubeStandIn(exec_handler=Container(import_fails=True)).start()
    try:
        provisioner = _with(settings, kube)
        source = tmp_path / "acme.aatx"
        source.write_bytes(EXPORT)
        with pytest.raises(AatError, match="importing the workspace failed.*passphrase does not open"):
            asyncio.run(provisioner.restore(SPEC, source, "wrong"))
        asyncio.run(provisioner.close())
    finally:
        kube.stop()
    assert kube.objects == {}
    assert [r.path.rsplit("/", 2)[-2] for r in kube.requests if r.method == "DELETE"] == [
        "jobs", "secrets", "statefulsets", "persistentvolumeclaims", "services", "networkpolicies"]


def test_a_suspended_tenant_exports_through_a_workspace_job(settings: ControlPlaneSettings, tmp_path: Path) -> None:
    container = Container()
    kube = KubeStandIn(exec_handler=container).start()
    try:
        provisioner = _with(settings, kube)
        asyncio.run(provisioner.provision(SPEC))
        asyncio.run(provisioner.stop(SPEC.id))
        out = tmp_path / "out.aatx"
        asyncio.run(provisioner.export(SPEC, out, "pass phrase"))
        asyncio.run(provisioner.close())
    finally:
        kube.stop()
    assert out.read_bytes() == EXPORT
    export, read, remove, done = kube.execs
    assert {e.pod for e in kube.execs} == {"aat-t00aa11bb22cc-export-x1y2z"}
    assert export.command[:4] == ["sh", "-c", 'printf %s "$0" | "$@"', "pass phrase"]
    assert export.command[4:7] == ["aat-appliance", "export", "--out"] and export.command[7].startswith("/data/.export-")
    assert read.command == ["base64", export.command[7]] and remove.command == ["rm", "-f", export.command[7]]
    assert done.command[-1].endswith("touch /tmp/aat-done")
    assert ("jobs", "tenants", "aat-t00aa11bb22cc-export") not in kube.objects
    assert kube.objects[("statefulsets", "tenants", "aat-t00aa11bb22cc")]["spec"]["replicas"] == 0


def test_render_manifests_shows_what_an_import_applies(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(AAT_CP_DATA_DIR=str(tmp_path), AAT_CP_KUBE_NAMESPACE="tenants")
    done = subprocess.run([str(CLI), "tenants", "render-manifests", "--name", "Acme", "--import"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    documents = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in documents] == ["Secret", "PersistentVolumeClaim", "Job"]
    for document in documents:
        kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
    assert set(documents[0]["stringData"].values()) == {"<redacted: generated at create>"}
    tenant = documents[0]["metadata"]["labels"]["aatsystems.org/tenant"]
    assert documents[1]["metadata"]["name"] == f"data-aat-{tenant}-0"
    assert documents[2]["metadata"]["name"] == f"aat-{tenant}-import"
