"""Retention: what the workspace keeps, and for how long. Each rule is one idempotent
statement over one table; :func:`run` applies them all for a given moment (tests pass a frozen
clock) and returns how many rows each rule removed, for the log.

| what | kept | rule |
|---|---|---|
| flow step statistics (``flow_step_events``) | ``AAT_LOG_RETENTION_DAYS`` (90) | deleted |
| outbound-webhook attempts, finished deliveries | ``AAT_LOG_RETENTION_DAYS`` | deleted |
| raw body of a *failed* webhook delivery | ``AAT_LOG_RETENTION_DAYS`` to retry it | blanked |
| browser sessions (with their IP and user agent) | until they expire or idle out | deleted |
| invitation and reset links, OAuth states | until they expire or are used | deleted |
| sign-in throttling (e-mail addresses, IPs) | a day after the window, once unlocked | deleted |
| deletion requests from Meta | their grace period (``AAT_ERASURE_GRACE_DAYS``) | completed (erased) |

Elsewhere: processed webhook bodies (``AAT_JOURNAL_RETENTION_DAYS``), dedupe keys (8 days) and
domain events (7 days) are purged by ``ingest.purge_journal``; tokens are erased the moment a
channel or integration is disconnected (their own DELETE handlers); structured logs go to
stdout and metrics live in memory (``/metrics``): what keeps them 90 days is the log and
metrics store they are shipped to, not this database.

Contacts, conversations and messages have no age limit here, on purpose: they are kept while the
subscription is active. Cancellation is the control plane's to know (Stripe), and it does not
tell the appliance to start deleting: it marks the tenant ``deleting`` with ``delete_after`` =
cancellation + ``AAT_CP_RETENTION_DAYS`` (30) and, once that has passed, its sweep runs
``aat-appliance destroy --yes`` (crypto-shredding) on the whole workspace. A self-hosted
appliance has no subscription to end: its owner keeps the data until they destroy it.

Kept on purpose: the audit log (the record that erasures and admin actions happened; no
subscriber data in it; hash-chained, so it is not trimmed row by row) and deletion requests
after completion (no personal data left in them).

A rule runs only when its table and columns exist (a feature's table may come later), otherwise
it is reported as skipped. Big deletes run in batches, one write each, so webhook
acknowledgements never wait long behind them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from appliance.privacy import service
from appliance.settings import Settings
from appliance.store.gateway import Gateway
from appliance.timeutil import to_iso

__all__ = ["Rule", "RULES", "BATCH", "cutoffs", "run", "run_rule"]

log = logging.getLogger("aat.privacy")

BATCH = 5000


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    table: str
    columns: tuple[str, ...]
    where: str          # over named parameters: :now, :logs_before, :idle_before, :day_before
    blank: str = ""     # "SET ..." to blank columns instead of deleting the row
    batched: bool = True

    def sql(self) -> str:
        table = json.dumps(self.table)
        chosen = f"SELECT rowid FROM {table} WHERE {self.where} LIMIT :batch"
        if self.blank:
            return f"UPDATE {table} SET {self.blank} WHERE rowid IN ({chosen})"
        if self.batched:
            return f"DELETE FROM {table} WHERE rowid IN ({chosen})"
        return f"DELETE FROM {table} WHERE {self.where}"


RULES: tuple[Rule, ...] = (
    Rule("flow_step_events", "flow_step_events", ("at",), "at < :logs_before"),
    Rule("webhook_attempts", "webhook_attempts", ("at",), "at < :logs_before"),
    Rule("webhook_deliveries", "webhook_deliveries", ("status", "updated_at"),
         "status != 'pending' AND updated_at < :logs_before"),
    Rule("failed_journal_bodies", "webhook_journal", ("state", "body", "received_at"),
         "state = 'failed' AND body IS NOT NULL AND received_at < :logs_before", blank="body = NULL"),
    Rule("sessions", "sessions", ("expires_at", "last_seen_at"),
         "expires_at <= :now OR last_seen_at <= :idle_before"),
    # WITHOUT ROWID tables: one plain statement (they hold a handful of rows).
    Rule("one_time_links", "one_time_links", ("expires_at", "used_at"),
         "expires_at <= :now OR used_at IS NOT NULL", batched=False),
    Rule("oauth_states", "oauth_states", ("expires_at",), "expires_at <= :now", batched=False),
    # A failure counts for a window shorter than a day (appliance.team): older rows hold nothing
    # but someone's address.
    Rule("signin_throttle", "signin_throttle", ("window_start", "locked_until"),
         "(locked_until IS NULL OR locked_until <= :now) AND window_start <= :day_before", batched=False),
)


def cutoffs(settings: Settings, now: datetime) -> dict[str, Any]:
    idle_hours = getattr(settings, "session_idle_hours", None)  # arrives with the web app's sessions
    idle_before = now - timedelta(hours=idle_hours) if idle_hours else now
    return {
        "now": to_iso(now),
        "logs_before": to_iso(now - timedelta(days=settings.log_retention_days)),
        "idle_before": to_iso(idle_before),
        "day_before": to_iso(now - timedelta(days=1)),
        "batch": BATCH,
    }


def _applies(db: Database, rule: Rule) -> bool:
    columns = {r[1] for r in db.conn.execute(f"PRAGMA table_info({json.dumps(rule.table)})")}
    return bool(columns) and set(rule.columns) <= columns


def run_rule(db: Database, rule: Rule, params: dict[str, Any]) -> int | None:
    """One batch of one rule; ``None`` when its table (or a column) does not exist."""
    if not _applies(db, rule):
        return None
    return int(db.conn.execute(rule.sql(), params).rowcount)


def run(gateway: Gateway, settings: Settings, now: datetime) -> dict[str, Any]:
    """Apply every rule as of ``now`` and complete due deletion requests; returns the counts
    (``skipped`` lists the rules whose table does not exist). Running it twice changes nothing
    the second time."""
    params = cutoffs(settings, now)
    removed: dict[str, int] = {}
    skipped: list[str] = []
    for rule in RULES:
        total = 0
        while True:
            count = gateway.write_sync(run_rule, rule, params)
            if count is None:
                skipped.append(rule.name)
                break
            total += count
            if not rule.batched or count < BATCH:
                break
        if rule.name not in skipped:
            removed[rule.name] = total
    summary = {"removed": removed, "skipped": skipped,
               "deletion_requests_completed": service.complete_due(gateway, now)}
    log.info("retention run", extra={"removed": removed, "skipped": skipped,
                                     "deletion_requests_completed": summary["deletion_requests_completed"]})
    return summary
