"""Entitlements: the plan and limits a workspace may use, signed by the control plane.

- :mod:`~appliance.entitlements.token`: the signed token (Ed25519 JWT), verify and sign;
- :mod:`~appliance.entitlements.service`: the entitlement in force (license file, pushed
  token, or none), accepting a pushed token, the limit checks;
- :mod:`~appliance.entitlements.store`: where it is kept and what the limits are measured on;
- :mod:`~appliance.entitlements.routes`: ``GET /api/v1/entitlements``, ``PUT /entitlements``;
- :mod:`~appliance.entitlements.report`: the month's usage, signed, to the control plane (hourly
  by the queue: ``entitlements.report_usage``; ``aat-appliance usage report`` on demand).

Enforced where the quantities grow: a contact beyond the contacts limit is stored but not
automated (the flow runner); AI replies beyond the month's take the step's ``on_error``
(:mod:`appliance.ai.limits`); adding a team member or a channel beyond the limit is refused
with ``limit_reached``.
"""

from appliance.features import exports_of

__all__ = ["FEATURE", "report_usage"]

__getattr__ = exports_of("appliance.entitlements.feature", __all__)  # importing the package imports nothing
