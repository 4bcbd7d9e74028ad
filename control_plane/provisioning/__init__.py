"""Provisioners: one module per backend behind one interface (``base.Provisioner``)."""

from __future__ import annotations

import httpx

from control_plane.provisioning.base import Provisioner, ProvisioningError, TenantSpec
from control_plane.settings import ControlPlaneSettings

__all__ = ["make_provisioner", "Provisioner", "ProvisioningError", "TenantSpec"]


def make_provisioner(settings: ControlPlaneSettings, http: httpx.AsyncClient) -> Provisioner:
    """The backend ``AAT_CP_PROVISIONER`` names (its SDK imported only when chosen)."""
    if settings.provisioner == "docker":
        from control_plane.provisioning.docker import DockerProvisioner

        return DockerProvisioner(settings)
    if settings.provisioner == "kubernetes":
        from control_plane.provisioning.kubernetes import KubernetesProvisioner

        return KubernetesProvisioner(settings)
    from control_plane.provisioning.local import LocalProvisioner

    return LocalProvisioner(settings, http)
