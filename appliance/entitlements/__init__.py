"""Entitlements: the plan and limits a workspace may use, signed by the control plane.

- :mod:`~appliance.entitlements.token`: the signed token (Ed25519 JWT), verify and sign;
- :mod:`~appliance.entitlements.service`: the entitlement in force (license file, pushed
  token, or none), accepting a pushed token, the limit checks;
- :mod:`~appliance.entitlements.store`: where it is kept and what the limits are measured on;
- :mod:`~appliance.entitlements.routes`: ``GET /api/v1/entitlements``, ``PUT /entitlements``.

Enforced where the quantities grow: a contact beyond the contacts limit is stored but not
automated (the flow runner); AI replies beyond the month's take the step's ``on_error``
(:mod:`appliance.ai.limits`); adding a team member or a channel beyond the limit is refused
with ``limit_reached``.
"""

from __future__ import annotations

from typing import Any

from appliance.entitlements import routes, service
from appliance.features import Feature

__all__ = ["FEATURE"]


def _install(runtime: Any) -> None:
    runtime.entitlements = runtime.workspace.gateway.write_sync(service.load, runtime.settings)


FEATURE = Feature(
    name="entitlements",
    routes=[routes.get_entitlements],
    public_routes=[routes.push_entitlements],
    install=_install,
)
