"""The kubernetes provisioner against a stand-in of the API server, and the rendered manifests
validated against the Kubernetes schemas (kubernetes-validate, strict)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from control_plane.provisioning.base import TenantSpec
from control_plane.provisioning.kubernetes import KubernetesProvisioner
from control_plane.provisioning.manifests import KUBE_VERSION, tenant_manifests
from control_plane.settings import ControlPlaneSettings
from tests.control_plane.standins.kube_api import KubeStandIn

SPEC = TenantSpec(id="t00aa11bb22cc", name="Acme", master_key="bWFzdGVyLWtleQ==", webhook_secret="hooks-secret")
CLI = Path(sys.prefix) / "bin" / "aat-control-plane"


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    standin = KubeStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def settings(kube: KubeStandIn, tmp_path: Path) -> ControlPlaneSettings:
    return ControlPlaneSettings(data_dir=tmp_path, provisioner="kubernetes", kube_api_url=kube.url,
                                kube_namespace="tenants", appliance_image="registry.test/aat-appliance:1.2",
                                kube_storage_class="fast", kube_storage_gb=2, tenant_memory_mb=512, tenant_cpu=0.5)


@pytest.fixture
def provisioner(settings: ControlPlaneSettings) -> KubernetesProvisioner:
    return KubernetesProvisioner(settings, ready_timeout=5)


@pytest.mark.parametrize("version", [KUBE_VERSION, kubernetes_validate.latest_version()])
def test_every_manifest_is_valid_for_kubernetes(settings: ControlPlaneSettings, version: str) -> None:
    for manifest in tenant_manifests(settings, SPEC):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_statefulset_keeps_one_replica_its_own_claim_and_runs_as_non_root(settings: ControlPlaneSettings) -> None:
    secret, statefulset, service, policy = tenant_manifests(settings, SPEC)
    spec = statefulset["spec"]
    assert spec["replicas"] == 1
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast" and claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["envFrom"] == [{"secretRef": {"name": "aat-t00aa11bb22cc-keys"}}]
    assert secret["stringData"] == {"AAT_MASTER_KEY": SPEC.master_key, "AAT_META_APP_SECRET": "hooks-secret"}
    assert service["spec"]["ports"][0]["port"] == 8000
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "aat-control-plane"}


def test_the_appliance_is_told_where_to_report_its_usage(settings: ControlPlaneSettings) -> None:
    hosted = dataclasses.replace(SPEC, control_plane_url="https://cp.aat.example", entitlements_public_key="cHVi")
    (container,) = tenant_manifests(settings, hosted)[1]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["AAT_CONTROL_PLANE_URL"], env["AAT_TENANT_ID"]) == ("https://cp.aat.example", SPEC.id)
    (bare,) = tenant_manifests(settings, SPEC)[1]["spec"]["template"]["spec"]["containers"]
    assert "AAT_CONTROL_PLANE_URL" not in {e["name"] for e in bare["env"]}


def test_provision_applies_the_four_objects_server_side(kube: KubeStandIn, provisioner: KubernetesProvisioner,
                                                        settings: ControlPlaneSettings) -> None:
    endpoint = asyncio.run(provisioner.provision(SPEC))
    assert endpoint.url == "http://aat-t00aa11bb22cc.tenants.svc:8000"
    applies = [r for r in kube.requests if r.method == "PATCH"]
    assert [r.path for r in applies] == [
        "/api/v1/namespaces/tenants/secrets/aat-t00aa11bb22cc-keys",
        "/apis/apps/v1/namespaces/tenants/statefulsets/aat-t00aa11bb22cc",
        "/api/v1/namespaces/tenants/services/aat-t00aa11bb22cc",
        "/apis/networking.k8s.io/v1/namespaces/tenants/networkpolicies/aat-t00aa11bb22cc",
    ]
    for request, expected in zip(applies, tenant_manifests(settings, SPEC), strict=True):
        assert request.content_type.startswith("application/apply-patch+yaml")
        assert request.query["fieldManager"] == ["aat-control-plane"] and request.query["force"] == ["true"]
        assert request.body == expected
    assert any(r.method == "GET" and r.path.endswith("/statefulsets/aat-t00aa11bb22cc/status") for r in kube.requests)


def test_stop_scales_to_zero_and_start_back_to_one(kube: KubeStandIn, provisioner: KubernetesProvisioner) -> None:
    asyncio.run(provisioner.provision(SPEC))
    asyncio.run(provisioner.stop(SPEC.id))
    scale = [r for r in kube.requests if r.path.endswith("/scale")]
    assert scale[-1].body == {"spec": {"replicas": 0}}
    assert kube.objects[("statefulsets", "tenants", "aat-t00aa11bb22cc")]["spec"]["replicas"] == 0
    asyncio.run(provisioner.start(SPEC))
    assert kube.objects[("statefulsets", "tenants", "aat-t00aa11bb22cc")]["spec"]["replicas"] == 1


def test_teardown_deletes_the_key_secret_first_then_everything_else(kube: KubeStandIn,
                                                                   provisioner: KubernetesProvisioner) -> None:
    asyncio.run(provisioner.provision(SPEC))
    asyncio.run(provisioner.teardown(SPEC.id))
    deletes = [r.path.rsplit("/", 2)[-2] for r in kube.requests if r.method == "DELETE"]
    assert deletes == ["secrets", "statefulsets", "persistentvolumeclaims", "services", "networkpolicies"]
    assert not kube.objects
    asyncio.run(provisioner.teardown(SPEC.id))  # idempotent: 404s are fine


def test_render_manifests_prints_valid_yaml_with_secrets_redacted(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    env.update(AAT_CP_DATA_DIR=str(tmp_path), AAT_CP_KUBE_NAMESPACE="tenants")
    done = subprocess.run([str(CLI), "tenants", "render-manifests", "--name", "Acme"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    documents = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in documents] == ["Secret", "StatefulSet", "Service", "NetworkPolicy"]
    for document in documents:
        kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
        assert document["metadata"]["namespace"] == "tenants"
    assert set(documents[0]["stringData"].values()) == {"<redacted: generated at create>"}
    assert "generated at create" not in yaml.safe_dump(documents[1:])
