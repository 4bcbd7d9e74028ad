"""The provisioner interface: where and how a tenant's appliance runs.

Every backend (``local``, ``docker``, ``kubernetes``) implements :class:`Provisioner`; the
lifecycle (``control_plane.lifecycle``) drives them and never branches on which one it has.
Every operation is idempotent, because the lifecycle converges (it may repeat a step after a
crash of the control plane half-way through):

- ``restore(spec, file, passphrase)`` fills a new tenant's storage from an export before
  its first start (``tenants import``).
- ``provision(spec)`` creates what the tenant needs (data dir or volume, secret) and starts
  its appliance; ``start(spec)`` starts an existing one (resume, control plane restart);
  both return the :class:`Endpoint` at which the control plane reaches it.
- ``stop(tenant_id)`` stops the appliance, keeping its data (suspend, deletion pending).
- ``teardown(tenant_id)`` stops it and destroys its data for good: the appliance's
  ``aat-appliance destroy --yes`` shreds its wrapped data key where the backend can run it,
  then the data dir / volume / claim and secrets go. The control plane also forgets the
  tenant's master key (crypto-shredding twice over).
- ``exec(spec, argv, stdin)`` runs an ``aat-appliance`` command (or the control plane's
  tenant tool) in the tenant's own environment, beside its running server: API tokens,
  exports.
- ``close()`` stops supervising; the local backend stops every process it started.

A tenant's appliance sees only its own secrets (:class:`TenantSpec`): its master key and its
webhook secret, injected as ``AAT_MASTER_KEY`` and ``AAT_META_APP_SECRET``.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from appliance.errors import AatError, ServiceUnavailable

__all__ = [
    "TenantSpec", "Endpoint", "ExecResult", "Provisioner", "ProvisioningError", "ReadyListener",
    "new_master_key", "new_webhook_secret", "APPLIANCE_PORT", "tenant_env",
]

APPLIANCE_PORT = 8000

ReadyListener = Callable[[str, bool], Awaitable[None] | None]  # (tenant id, ready)


class ProvisioningError(ServiceUnavailable):
    """The backend could not do what was asked (engine unreachable, process would not start)."""

    default_code = "provisioning_failed"


def new_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def new_webhook_secret() -> str:
    return secrets.token_hex(32)


@dataclass(frozen=True)
class TenantSpec:
    """What a backend needs to run one tenant's appliance."""

    id: str
    name: str
    master_key: str
    webhook_secret: str
    graph_api_base: str = "https://graph.facebook.com"
    graph_api_version: str = "v25.0"
    port: int | None = None  # local: the port the tenant had (kept across restarts)
    entitlements_public_key: str = ""  # the control plane's Ed25519 key, to verify pushed entitlements
    control_plane_url: str = ""  # where the appliance reports its usage (AAT_CONTROL_PLANE_URL)
    extra_env: dict[str, str] = field(default_factory=dict)


def tenant_env(spec: TenantSpec, *, public_url: str) -> dict[str, str]:
    """The appliance's ``AAT_`` environment: its own keys, never the platform's."""
    return {
        "AAT_MASTER_KEY": spec.master_key,
        "AAT_META_APP_SECRET": spec.webhook_secret,
        "AAT_GRAPH_API_BASE": spec.graph_api_base,
        "AAT_GRAPH_API_VERSION": spec.graph_api_version,
        "AAT_PUBLIC_URL": public_url,
        "AAT_TENANT_ID": spec.id,
        "AAT_ENTITLEMENTS_PUBLIC_KEY": spec.entitlements_public_key,
        "AAT_CONTROL_PLANE_URL": spec.control_plane_url,
        **spec.extra_env,
    }


@dataclass(frozen=True)
class Endpoint:
    url: str
    port: int | None = None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    def check(self, what: str) -> ExecResult:
        if self.exit_code != 0:
            last = (self.stderr.strip().splitlines() or ["no output"])[-1]
            raise AatError(f"{what} failed in the tenant's appliance: {last}", code="tenant_command_failed")
        return self

    @property
    def last_line(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1].strip() if lines else ""


class Provisioner(Protocol):
    name: str

    def on_ready(self, listener: ReadyListener) -> None:
        """Call ``listener(tenant_id, ready)`` when a supervised appliance comes up or goes down."""

    async def provision(self, spec: TenantSpec) -> Endpoint: ...

    async def restore(self, spec: TenantSpec, source: Path, passphrase: str) -> None:
        """Import an export (``aat-appliance import``) into the tenant's new, empty storage,
        before its first start."""

    async def start(self, spec: TenantSpec) -> Endpoint: ...

    async def stop(self, tenant_id: str) -> None: ...

    async def teardown(self, tenant_id: str) -> None: ...

    async def exec(self, spec: TenantSpec, argv: list[str], stdin: bytes | None = None) -> ExecResult: ...

    async def export(self, spec: TenantSpec, out: Path, passphrase: str) -> None: ...

    async def close(self) -> None: ...
