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

from __future__ import annotations

from typing import Any

from huey import crontab

from appliance.entitlements import report, routes, service
from appliance.features import Feature
from appliance.timeutil import utcnow

__all__ = ["FEATURE", "report_usage"]


def _install(runtime: Any) -> None:
    runtime.entitlements = runtime.workspace.gateway.write_sync(service.load, runtime.settings)


def report_usage(runtime: Any) -> dict[str, Any]:
    """Build, sign and send this month's usage report (nothing unless hosted)."""
    if not report.configured(runtime.settings):
        return {"usage_report": "not configured"}
    now = utcnow()
    numbers = runtime.workspace.gateway.read_sync(report.counts, now)
    return report.send(runtime.settings, report.build(runtime.settings.tenant_id, numbers, now))


def _register_tasks(huey: Any, runtime: Any) -> None:
    @huey.periodic_task(crontab(minute="7"), name="entitlements.report_usage")
    def report_usage_task() -> dict[str, Any]:
        return report_usage(runtime)


FEATURE = Feature(
    name="entitlements",
    routes=[routes.get_entitlements],
    public_routes=[routes.push_entitlements],
    install=_install,
    register_tasks=_register_tasks,
)
