"""The Kubernetes objects of one tenant: what the kubernetes provisioner applies, and what
``aat-control-plane tenants render-manifests --name N`` prints (pure functions).

Per tenant ``t…`` in ``AAT_CP_KUBE_NAMESPACE``, all named ``aat-<id>`` and labelled
``app.kubernetes.io/{name: aat-appliance, instance: aat-<id>, managed-by: aat-control-plane}``:

- **Secret** ``aat-<id>-keys``: the tenant's master key and webhook secret (``AAT_MASTER_KEY``,
  ``AAT_META_APP_SECRET``), read by the appliance through ``envFrom``;
- **StatefulSet**, one replica, a ``volumeClaimTemplate`` ``data`` mounted at ``/data`` and
  ``persistentVolumeClaimRetentionPolicy`` ``whenDeleted: Delete`` (deleting the set deletes
  the tenant's volume; ``whenScaled: Retain`` keeps it while suspended at 0 replicas), resource
  requests and limits, non-root pod and container security contexts (uid 10001, read-only root
  filesystem, no privilege escalation, every capability dropped, RuntimeDefault seccomp), no
  service-account token, readiness on ``/readyz`` and liveness on ``/healthz``;
- **Service** (ClusterIP, port 8000): where the control plane forwards webhooks;
- **NetworkPolicy**: ingress only from the control plane's pods
  (``app.kubernetes.io/name: aat-control-plane``, any namespace) on port 8000; egress only DNS
  and HTTPS to addresses outside the private ranges (Meta, AI providers, Google).
"""

from __future__ import annotations

import json
from typing import Any

from control_plane.provisioning.base import APPLIANCE_PORT, TenantSpec
from control_plane.settings import ControlPlaneSettings

__all__ = ["tenant_manifests", "render_yaml", "object_name", "secret_name", "KUBE_VERSION"]

KUBE_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are validated against
_PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def object_name(tenant_id: str) -> str:
    return f"aat-{tenant_id}"


def secret_name(tenant_id: str) -> str:
    return f"aat-{tenant_id}-keys"


def _labels(tenant_id: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "aat-appliance", "app.kubernetes.io/instance": object_name(tenant_id),
            "app.kubernetes.io/managed-by": "aat-control-plane", "aatsystems.org/tenant": tenant_id}


def _meta(settings: ControlPlaneSettings, name: str, tenant_id: str) -> dict[str, Any]:
    return {"name": name, "namespace": settings.kube_namespace, "labels": _labels(tenant_id)}


def service_url(settings: ControlPlaneSettings, tenant_id: str) -> str:
    return f"http://{object_name(tenant_id)}.{settings.kube_namespace}.svc:{APPLIANCE_PORT}"


def tenant_manifests(settings: ControlPlaneSettings, spec: TenantSpec, *, replicas: int = 1) -> list[dict[str, Any]]:
    """Secret, StatefulSet, Service, NetworkPolicy (in the order they are applied)."""
    name, tid = object_name(spec.id), spec.id
    selector = {"app.kubernetes.io/instance": name}
    memory, cpu = settings.tenant_memory_mb, settings.tenant_cpu
    claim: dict[str, Any] = {
        "metadata": {"name": "data", "labels": _labels(tid)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{settings.kube_storage_gb}Gi"}}},
    }
    if settings.kube_storage_class:
        claim["spec"]["storageClassName"] = settings.kube_storage_class
    env = [{"name": "AAT_DATA_DIR", "value": "/data"}, {"name": "AAT_HOST", "value": "0.0.0.0"},
           {"name": "AAT_PORT", "value": str(APPLIANCE_PORT)},
           {"name": "AAT_PUBLIC_URL", "value": service_url(settings, tid)},
           {"name": "AAT_GRAPH_API_BASE", "value": spec.graph_api_base},
           {"name": "AAT_GRAPH_API_VERSION", "value": spec.graph_api_version},
           {"name": "AAT_TENANT_ID", "value": tid}]
    if spec.entitlements_public_key:  # public: verifies the control plane's entitlement pushes
        env.append({"name": "AAT_ENTITLEMENTS_PUBLIC_KEY", "value": spec.entitlements_public_key})
    container = {
        "name": "appliance", "image": settings.appliance_image, "args": ["serve"], "env": env,
        "envFrom": [{"secretRef": {"name": secret_name(tid)}}],
        "ports": [{"name": "http", "containerPort": APPLIANCE_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20,
                          "initialDelaySeconds": 20, "failureThreshold": 3},
        "resources": {"requests": {"cpu": f"{max(int(cpu * 100), 10)}m", "memory": f"{max(memory // 2, 64)}Mi"},
                      "limits": {"cpu": f"{int(cpu * 1000)}m", "memory": f"{memory}Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(settings, name, tid),
        "spec": {
            "replicas": replicas, "serviceName": name, "selector": {"matchLabels": selector},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": _labels(tid)},
                "spec": {
                    "automountServiceAccountToken": False, "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                        "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                },
            },
            "volumeClaimTemplates": [claim],
        },
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(settings, secret_name(tid), tid),
              "stringData": {"AAT_MASTER_KEY": spec.master_key, "AAT_META_APP_SECRET": spec.webhook_secret}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(settings, name, tid),
               "spec": {"type": "ClusterIP", "selector": selector,
                        "ports": [{"name": "http", "port": APPLIANCE_PORT, "targetPort": "http", "protocol": "TCP"}]}}
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(settings, name, tid),
        "spec": {
            "podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {},
                                   "podSelector": {"matchLabels": {"app.kubernetes.io/name": "aat-control-plane"}}}],
                         "ports": [{"protocol": "TCP", "port": APPLIANCE_PORT}]}],
            "egress": [
                {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": _PRIVATE}}],
                 "ports": [{"protocol": "TCP", "port": 443}]},
            ],
        },
    }
    return [secret, statefulset, service, policy]


def render_yaml(settings: ControlPlaneSettings, spec: TenantSpec, *, redact: bool = False) -> str:
    """Multi-document YAML of :func:`tenant_manifests` (secret values replaced when ``redact``)."""
    import yaml

    documents = tenant_manifests(settings, spec)
    if redact:
        documents = json.loads(json.dumps(documents))
        for doc in documents:
            if doc["kind"] == "Secret":
                doc["stringData"] = {key: "<redacted: generated at create>" for key in doc["stringData"]}
    return "".join("---\n" + yaml.safe_dump(doc, sort_keys=False) for doc in documents)
