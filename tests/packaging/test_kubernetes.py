"""packaging/kubernetes: the control plane's kustomize base, validated against the Kubernetes
schemas with kubernetes-validate (strict), and the properties the issue asks for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from control_plane.provisioning.manifests import KUBE_VERSION

BASE = Path(__file__).resolve().parents[2] / "packaging" / "kubernetes"


def listed_documents() -> list[dict[str, Any]]:
    """Every document of every file kustomization.yaml lists, as the files say."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    return docs


def rendered_documents() -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` renders when kubectl is here, else the listed files."""
    if shutil.which("kubectl") is None:
        return listed_documents()
    done = subprocess.run(["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_every_listed_file_exists_and_nothing_is_left_out() -> None:
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", [KUBE_VERSION, kubernetes_validate.latest_version()])
def test_every_document_is_valid_for_kubernetes(version: str) -> None:
    docs = listed_documents()
    assert sorted(d["kind"] for d in docs) == sorted([
        "Namespace", "Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap",
        "PersistentVolumeClaim", "Deployment", "Service", "Ingress", "NetworkPolicy"])
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_rendered_base_is_valid_and_labelled() -> None:
    docs = rendered_documents()
    assert len(docs) == 12
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "aat-systems"


def test_a_broken_manifest_is_refused_by_the_validator() -> None:
    # So that the passing validations above mean something.
    [deployment] = by_kind(listed_documents(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = "1 cpu"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_the_deployment_is_one_non_root_replica_with_limits_and_probes() -> None:
    [deployment] = by_kind(listed_documents(), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"  # one SQLite writer
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    [container] = pod["containers"]
    assert container["command"] == ["aat-control-plane"] and container["args"] == ["serve"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/data", "/tmp"}
    [claim] = by_kind(listed_documents(), "PersistentVolumeClaim")
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_settings_and_secret_names_are_the_control_planes() -> None:
    from control_plane.settings import ControlPlaneSettings

    docs = listed_documents()
    [config] = by_kind(docs, "ConfigMap")
    [secret] = by_kind(docs, "Secret")
    known = {f"AAT_CP_{n.upper()}" for n in ControlPlaneSettings.model_fields} | {
        "AAT_META_APP_SECRET", "AAT_META_VERIFY_TOKEN"}
    assert set(config["data"]) | set(secret["stringData"]) <= known
    assert config["data"]["AAT_CP_PROVISIONER"] == "kubernetes"
    assert config["data"]["AAT_CP_PORT"] == "9000"


def test_the_provisioner_may_act_only_in_the_tenants_namespace() -> None:
    docs = listed_documents()
    [role] = by_kind(docs, "Role")
    [binding] = by_kind(docs, "RoleBinding")
    [config] = by_kind(docs, "ConfigMap")
    assert role["metadata"]["namespace"] == config["data"]["AAT_CP_KUBE_NAMESPACE"] == "aat-tenants"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aat-control-plane",
                                    "namespace": "aat-control-plane"}]
    assert not by_kind(docs, "ClusterRole")
    [policy] = by_kind(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9000}]
