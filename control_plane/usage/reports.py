"""Accepting signed usage reports from tenants' appliances (``POST /usage/reports``).

Contract of :meth:`UsageReports.accept` (the wire format is ``appliance.entitlements.report``'s):
checked in this order, and a refusal stores nothing:

1. the body is a JSON object naming a tenant (400 ``invalid_json``);
2. ``X-AAT-Usage-Signature`` is the HMAC of these exact bytes under the tenant's report key
   (derived from the webhook secret the control plane issued it); an unknown or deleted tenant
   is refused the same way (403 ``invalid_signature``);
3. the body has the report's shape (422 ``invalid_request``) and ``period`` is the UTC month of
   ``issued_at`` (422 ``wrong_period``);
4. ``issued_at`` is within 300 s of now (403 ``stale_report``);
5. its ``report_id`` was never accepted (409 ``replayed_report``) and ``issued_at`` is later
   than the tenant's last accepted report (409 ``out_of_order_report``): 4 and 5 together
   refuse every replay, in or out of the 300 s window.

Accepted: the report is stored (every one, ``usage_reports``) and the month's numbers replace
``tenant_usage``'s, in one transaction; then the period's overage goes to Stripe
(:class:`~control_plane.usage.meter.Overage`), whose failure does not undo the report.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from appliance.entitlements.report import signature
from appliance.errors import BadRequest, Conflict, Detail, Forbidden, NotFound, Unprocessable
from appliance.timeutil import iso_now, to_iso, utcnow
from control_plane.db import Store
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import unseal
from control_plane.usage import store
from control_plane.usage.meter import Overage

__all__ = ["UsageReports", "TOLERANCE_SECONDS", "MAX_BODY_BYTES"]

log = logging.getLogger("aat.cp.usage")

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 16 * 1024
Count = Annotated[int, Field(ge=0, le=10**12, strict=True)]


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacts: Count
    automated_contacts: Count
    ai_replies: Count
    seats: Count
    channels: Count
    messages: Count


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: Annotated[str, StringConstraints(pattern=r"^t[0-9a-f]{12}$")]
    report_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    issued_at: datetime
    period: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    usage: Usage


def _forged() -> Forbidden:
    return Forbidden("X-AAT-Usage-Signature does not sign this body with the named tenant's key",
                     code="invalid_signature")


class UsageReports:
    def __init__(self, cp_store: Store, overage: Overage) -> None:
        self.store = cp_store
        self.db = cp_store.gateway
        self.overage = overage
        self._recovered = False  # the first sweep also rechecks what a restart forgot

    async def accept(self, body: bytes, header: str | None) -> dict[str, Any]:
        try:
            raw = json.loads(body)
        except ValueError:
            raise BadRequest("the body is not JSON", code="invalid_json") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("tenant"), str):
            raise BadRequest("the body is not a usage report (a JSON object with tenant)", code="invalid_json")
        try:
            row = await self.db.read(tenants.get_tenant, raw["tenant"][:40])
        except NotFound:
            raise _forged() from None
        secret = unseal(self.store.fields, "webhook_secret", row["id"], row["webhook_secret_enc"])
        if secret is None or not header or not hmac.compare_digest(header.encode(), signature(body, secret).encode()):
            raise _forged()
        try:
            report = Report.model_validate(raw)
        except ValidationError as exc:
            details = [Detail(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
            raise Unprocessable("the report does not match the expected shape; see details", code="invalid_request",
                                details=details) from None
        if report.issued_at.tzinfo is None:
            raise Unprocessable("issued_at needs a time zone (UTC: Z)", code="invalid_request")
        if report.period != report.issued_at.astimezone(utcnow().tzinfo).strftime("%Y-%m"):
            raise Unprocessable(f"period {report.period} is not the UTC month of issued_at", code="wrong_period")
        off = abs((utcnow() - report.issued_at).total_seconds())
        if off > TOLERANCE_SECONDS:
            raise Forbidden(f"the report was issued {int(off)} s away from now; reports are taken within "
                            f"{TOLERANCE_SECONDS} s", code="stale_report")
        issued_at = to_iso(report.issued_at)

        def write(db: Any) -> None:
            if store.report_seen(db, report.report_id):
                raise Conflict(f"report {report.report_id} was accepted already (a replay)", code="replayed_report")
            last = store.last_issued_at(db, report.tenant)
            if last is not None and issued_at <= last:
                raise Conflict(f"a report issued at {last} was accepted already; this one is not newer",
                               code="out_of_order_report")
            numbers = report.usage.model_dump()
            store.insert_report(db, report_id=report.report_id, tenant_id=report.tenant, period=report.period,
                                issued_at=issued_at, received_at=iso_now(), usage=numbers)
            db.conn.execute(
                "INSERT INTO tenant_usage (tenant_id, month, contacts, ai_replies, seats, channels, plan, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, month) DO UPDATE SET "
                "contacts = excluded.contacts, ai_replies = excluded.ai_replies, seats = excluded.seats, "
                "channels = excluded.channels, plan = excluded.plan, recorded_at = excluded.recorded_at",
                [report.tenant, report.period, numbers["contacts"], numbers["ai_replies"], numbers["seats"],
                 numbers["channels"], row["plan"], iso_now()])

        await self.db.write(write)
        log.info("usage report accepted", extra={"tenant": report.tenant, "period": report.period})
        sent = await self.overage.report(report.tenant, report.period)
        return {"status": "recorded", "report_id": report.report_id, "period": report.period, "meter_events": sent}

    async def retry_overage(self) -> int:
        """The sweep's part: the overage whose sending failed (:attr:`Overage.pending`); returns
        how many meter events were sent. The first sweep after a start rechecks every tenant
        that reported this month or last (a failure before a restart is in no memory, and last
        month gets no new report), sending only what Stripe was not told."""
        if not self._recovered:
            now = utcnow()
            last_month = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
            self.overage.pending.update(await self.db.read(store.reported_since, last_month))
            self._recovered = True
        total = 0
        for tenant_id, period in sorted(self.overage.pending):
            total += len(await self.overage.report(tenant_id, period))
        return total
