"""The entitlements feature as the app plugs it in (``appliance.features``): the routes,
the entitlement loaded at start, the hourly usage report."""

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
