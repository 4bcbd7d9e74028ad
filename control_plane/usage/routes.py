"""``POST /usage/reports`` (an appliance's signed report: the signature is the credential) and
``GET /admin/api/tenants/{id}/usage`` (admin token: a tenant's reports and meter events)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.exceptions import ClientException
from litestar.params import PathParameter, QueryParameter

from appliance.entitlements.report import HEADER
from appliance.errors import PayloadTooLarge
from control_plane.lifecycle import store as tenants
from control_plane.usage import store
from control_plane.usage.reports import MAX_BODY_BYTES
from control_plane.web import CpDep, Limit, admin_guard

__all__ = ["usage_report", "tenant_usage"]

TenantId = Annotated[str, PathParameter(pattern=r"^t[0-9a-f]{12}$")]
Period = QueryParameter(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="One UTC month, YYYY-MM (default: all).")


@post("/usage/reports", request_max_body_size=MAX_BODY_BYTES, status_code=200)
async def usage_report(request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
    try:
        body = await request.body()
    except ClientException as exc:
        if exc.status_code == 413:
            raise PayloadTooLarge(f"a usage report is at most {MAX_BODY_BYTES} bytes") from exc
        raise
    return await cp.usage_reports.accept(body, request.headers.get(HEADER.lower()))


@get("/admin/api/tenants/{tenant_id:str}/usage", guards=[admin_guard])
async def tenant_usage(tenant_id: TenantId, cp: CpDep, period: Annotated[str | None, Period] = None,
                       limit: Annotated[int, Limit] = 50) -> dict[str, Any]:
    """The tenant's accepted reports (newest first) and the meter events their overage sent."""
    await cp.store.gateway.read(tenants.get_tenant, tenant_id)  # 404 for an unknown tenant
    reports = await cp.store.gateway.read(store.reports, tenant_id, period, limit)
    events = await cp.store.gateway.read(store.meter_events, tenant_id, period)
    return {"tenant_id": tenant_id, "period": period, "reports": reports, "meter_events": events}
