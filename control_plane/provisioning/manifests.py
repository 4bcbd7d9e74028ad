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

For work on a tenant's files while its StatefulSet has no pod (``tenants import``, an export of a
suspended tenant), ``workspace_manifests`` gives the Secret and:

- **PersistentVolumeClaim** ``data-aat-<id>-0``: exactly the claim the StatefulSet's
  ``volumeClaimTemplate`` makes for its pod 0 (same name, labels and spec), so the StatefulSet
  adopts it when it starts (and deletes it with itself: ``whenDeleted: Delete``);
- **Job** ``aat-<id>-<purpose>``: one pod (no retries, a deadline, removed 10 min after it
  ends) from the appliance image, with the tenant's Secret and claim mounted at ``/data`` and the
  same resources and security contexts, whose only process waits for ``/tmp/aat-done``. The
  control plane works in it through the pod exec API, then deletes it. Its pod is labelled
  ``aat-<id>-<purpose>``, not ``aat-<id>``, so the tenant's Service never selects it; it has no
  listener and no service-account token.
"""

from __future__ import annotations

import json
from typing import Any

from control_plane.provisioning.base import APPLIANCE_PORT, TenantSpec
from control_plane.settings import ControlPlaneSettings

__all__ = ["tenant_manifests", "workspace_manifests", "render_yaml", "object_name", "secret_name", "claim_name",
           "job_name", "job_labels", "DONE_MARK", "KUBE_VERSION"]

KUBE_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are validated against
_PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def object_name(tenant_id: str) -> str:
    return f"aat-{tenant_id}"


def secret_name(tenant_id: str) -> str:
    return f"aat-{tenant_id}-keys"


def claim_name(tenant_id: str) -> str:
    """The claim the StatefulSet's volumeClaimTemplate ``data`` makes for its pod 0."""
    return f"data-aat-{tenant_id}-0"


def job_name(tenant_id: str, purpose: str) -> str:
    return f"aat-{tenant_id}-{purpose}"


DONE_MARK = "/tmp/aat-done"
JOB_WAIT_SECONDS = 1800
# The workspace Job's only process: wait (at most JOB_WAIT_SECONDS) until the control plane is done.
_HOLD = (f'i=0; until [ -e {DONE_MARK} ]; do [ "$i" -ge {JOB_WAIT_SECONDS} ] && exit 1; '
         'sleep 1; i=$((i+1)); done')
_TMP = {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}


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
    claim: dict[str, Any] = {"metadata": {"name": "data", "labels": _labels(tid)}, "spec": _claim_spec(settings)}
    container = {
        "name": "appliance", **_container(settings, spec), "args": ["serve"],
        "ports": [{"name": "http", "containerPort": APPLIANCE_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20,
                          "initialDelaySeconds": 20, "failureThreshold": 3},
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(settings, name, tid),
        "spec": {
            "replicas": replicas, "serviceName": name, "selector": {"matchLabels": selector},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": _labels(tid)},
                "spec": {**_pod_security(), "terminationGracePeriodSeconds": 30, "containers": [container],
                         "volumes": [_TMP]},
            },
            "volumeClaimTemplates": [claim],
        },
    }
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
    return [_secret(settings, spec), statefulset, service, policy]


def job_labels(tenant_id: str, purpose: str) -> dict[str, str]:
    """The workspace Job's pod labels: not the tenant's ``instance``, so its Service never selects it."""
    return {"app.kubernetes.io/name": "aat-appliance-workspace",
            "app.kubernetes.io/instance": job_name(tenant_id, purpose),
            "app.kubernetes.io/managed-by": "aat-control-plane", "aatsystems.org/tenant": tenant_id}


def workspace_manifests(settings: ControlPlaneSettings, spec: TenantSpec, purpose: str) -> list[dict[str, Any]]:
    """Secret, PersistentVolumeClaim and the one-pod Job mounting it (in the order they are
    applied): for work on the tenant's files while its StatefulSet has no pod."""
    tid = spec.id
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(settings, claim_name(tid), tid),
             "spec": _claim_spec(settings)}
    labels = job_labels(tid, purpose)
    container = {"name": "workspace", **_container(settings, spec), "command": ["sh", "-c", _HOLD]}
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(tid, purpose), "namespace": settings.kube_namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0, "activeDeadlineSeconds": JOB_WAIT_SECONDS + 120, "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {**_pod_security(), "restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                         "containers": [container],
                         "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name(tid)}}, _TMP]},
            },
        },
    }
    return [_secret(settings, spec), claim, job]


def _claim_spec(settings: ControlPlaneSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{settings.kube_storage_gb}Gi"}}}
    if settings.kube_storage_class:
        spec["storageClassName"] = settings.kube_storage_class
    return spec


def _pod_security() -> dict[str, Any]:
    return {"automountServiceAccountToken": False, "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}}


def _container(settings: ControlPlaneSettings, spec: TenantSpec) -> dict[str, Any]:
    """What the appliance's container and the workspace Job's share: image, environment, keys,
    resources, security context, mounts."""
    tid, memory, cpu = spec.id, settings.tenant_memory_mb, settings.tenant_cpu
    env = [{"name": "AAT_DATA_DIR", "value": "/data"}, {"name": "AAT_HOST", "value": "0.0.0.0"},
           {"name": "AAT_PORT", "value": str(APPLIANCE_PORT)},
           {"name": "AAT_PUBLIC_URL", "value": service_url(settings, tid)},
           {"name": "AAT_GRAPH_API_BASE", "value": spec.graph_api_base},
           {"name": "AAT_GRAPH_API_VERSION", "value": spec.graph_api_version},
           {"name": "AAT_TENANT_ID", "value": tid}]
    if spec.entitlements_public_key:  # public: verifies the control plane's entitlement pushes
        env.append({"name": "AAT_ENTITLEMENTS_PUBLIC_KEY", "value": spec.entitlements_public_key})
    if spec.control_plane_url:  # where the appliance sends its signed usage reports
        env.append({"name": "AAT_CONTROL_PLANE_URL", "value": spec.control_plane_url})
    return {
        "image": settings.appliance_image, "env": env, "envFrom": [{"secretRef": {"name": secret_name(tid)}}],
        "resources": {"requests": {"cpu": f"{max(int(cpu * 100), 10)}m", "memory": f"{max(memory // 2, 64)}Mi"},
                      "limits": {"cpu": f"{int(cpu * 1000)}m", "memory": f"{memory}Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def _secret(settings: ControlPlaneSettings, spec: TenantSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(settings, secret_name(spec.id), spec.id),
            "stringData": {"AAT_MASTER_KEY": spec.master_key, "AAT_META_APP_SECRET": spec.webhook_secret}}


def render_yaml(settings: ControlPlaneSettings, spec: TenantSpec, *, redact: bool = False,
                purpose: str | None = None) -> str:
    """Multi-document YAML of :func:`tenant_manifests`, or of :func:`workspace_manifests` for
    ``purpose`` (secret values replaced when ``redact``)."""
    import yaml

    documents = tenant_manifests(settings, spec) if purpose is None else workspace_manifests(settings, spec, purpose)
    if redact:
        documents = json.loads(json.dumps(documents))
        for doc in documents:
            if doc["kind"] == "Secret":
                doc["stringData"] = {key: "<redacted: generated at create>" for key in doc["stringData"]}
    return "".join("---\n" + yaml.safe_dump(doc, sort_keys=False) for doc in documents)
