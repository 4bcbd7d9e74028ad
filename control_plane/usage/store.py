"""Usage reports and the meter events sent for their overage. SQL only."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one, scalar

__all__ = ["USAGE", "report_seen", "last_issued_at", "insert_report", "reports", "latest_report", "told_stripe",
           "insert_meter_event", "meter_events", "reported_since"]

USAGE = ("contacts", "automated_contacts", "ai_replies", "seats", "channels", "messages")


def report_seen(db: Database, report_id: str) -> bool:
    return one(db, "SELECT 1 AS x FROM usage_reports WHERE report_id = ?", [report_id]) is not None


def last_issued_at(db: Database, tenant_id: str) -> str | None:
    return scalar(db, "SELECT max(issued_at) FROM usage_reports WHERE tenant_id = ?", [tenant_id])


def insert_report(db: Database, *, report_id: str, tenant_id: str, period: str, issued_at: str, received_at: str,
                  usage: dict[str, int]) -> None:
    db.conn.execute(
        f"INSERT INTO usage_reports (report_id, tenant_id, period, issued_at, received_at, {', '.join(USAGE)}) "
        f"VALUES (?, ?, ?, ?, ?, {', '.join('?' for _ in USAGE)})",
        [report_id, tenant_id, period, issued_at, received_at, *(int(usage[k]) for k in USAGE)])


def reports(db: Database, tenant_id: str, period: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first."""
    if period is None:
        return many(db, "SELECT * FROM usage_reports WHERE tenant_id = ? ORDER BY issued_at DESC LIMIT ?",
                    [tenant_id, limit])
    return many(db, "SELECT * FROM usage_reports WHERE tenant_id = ? AND period = ? ORDER BY issued_at DESC LIMIT ?",
                [tenant_id, period, limit])


def latest_report(db: Database, tenant_id: str, period: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM usage_reports WHERE tenant_id = ? AND period = ? ORDER BY issued_at DESC LIMIT 1",
               [tenant_id, period])


def told_stripe(db: Database, tenant_id: str, period: str, metric: str) -> int:
    """The overage of the period Stripe has been told about (0: none)."""
    return int(scalar(db, "SELECT max(total) FROM meter_events WHERE tenant_id = ? AND period = ? AND metric = ?",
                      [tenant_id, period, metric]) or 0)


def insert_meter_event(db: Database, *, identifier: str, tenant_id: str, period: str, metric: str, event_name: str,
                       customer_id: str, value: int, total: int, sent_at: str) -> None:
    db.conn.execute(
        "INSERT OR IGNORE INTO meter_events (identifier, tenant_id, period, metric, event_name, customer_id, value, "
        "total, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [identifier, tenant_id, period, metric, event_name, customer_id, value, total, sent_at])


def meter_events(db: Database, tenant_id: str, period: str | None) -> list[dict[str, Any]]:
    if period is None:
        return many(db, "SELECT * FROM meter_events WHERE tenant_id = ? ORDER BY period, metric, total", [tenant_id])
    return many(db, "SELECT * FROM meter_events WHERE tenant_id = ? AND period = ? ORDER BY metric, total",
                [tenant_id, period])



def reported_since(db: Database, period: str) -> list[tuple[str, str]]:
    """Every (tenant, period) with an accepted report in ``period`` or later."""
    return [(r["tenant_id"], r["period"]) for r in
            many(db, "SELECT DISTINCT tenant_id, period FROM usage_reports WHERE period >= ? ORDER BY tenant_id, period",
                 [period])]
