"""Read-only numbers for the builder and the dashboard. SQL only, synchronous, one function
per question; every range is ``[since, until)`` in stored UTC ISO times.

Days are UTC calendar days (``substr(at, 1, 10)``): the stored times are UTC, and grouping in
SQL keeps a month of messages to one pass over the rows in the range.

First response time of agents: per conversation, the clock starts at the first inbound message
after the last agent (``sent_by = 'user'``) message and stops at the next agent message; bot
messages neither start nor stop it (a bot answer is not a person's answer). Waits that end
inside the range count.
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many
from appliance.timeutil import from_iso

__all__ = ["flow_versions", "messages_per_day", "new_contacts_per_day", "flow_completions_per_day",
           "ai_replies_per_day", "agent_first_responses", "flow_names"]


def flow_versions(db: Database, flow_id: int) -> list[dict[str, Any]]:
    """Published versions of a flow, newest first: ``{version, published_at, steps}``."""
    rows = many(db, "SELECT version, published_at, (SELECT count(*) FROM json_each(document, '$.steps')) AS steps "
                    "FROM flow_versions WHERE flow_id = ? ORDER BY version DESC", [flow_id])
    return [{"version": r["version"], "published_at": r["published_at"], "steps": r["steps"]} for r in rows]


def flow_names(db: Database) -> list[str]:
    """Names of live flows (for the ``goto_flow`` step's suggestions)."""
    return [r["name"] for r in many(db, "SELECT name FROM flows WHERE deleted_at IS NULL ORDER BY name LIMIT 500")]


def messages_per_day(db: Database, since: str, until: str) -> list[dict[str, Any]]:
    """``{day, channel, direction, n}`` for every day/channel/direction with messages."""
    return many(db, """
        SELECT substr(m.created_at, 1, 10) AS day, ch.type AS channel, m.direction, count(*) AS n
        FROM messages m JOIN channels ch ON ch.id = m.channel_id
        WHERE m.created_at >= ? AND m.created_at < ? AND m.sent_by != 'echo'
        GROUP BY day, ch.type, m.direction ORDER BY day""", [since, until])


def new_contacts_per_day(db: Database, since: str, until: str) -> dict[str, int]:
    return {r["day"]: r["n"] for r in many(db, """
        SELECT substr(created_at, 1, 10) AS day, count(*) AS n FROM contacts
        WHERE created_at >= ? AND created_at < ? GROUP BY day""", [since, until])}


def flow_completions_per_day(db: Database, since: str, until: str) -> dict[str, int]:
    return {r["day"]: r["n"] for r in many(db, """
        SELECT substr(ended_at, 1, 10) AS day, count(*) AS n FROM flow_runs
        WHERE status = 'completed' AND ended_at >= ? AND ended_at < ? GROUP BY day""", [since, until])}


def ai_replies_per_day(db: Database, since: str, until: str) -> dict[str, int]:
    """Bot messages written by an AI provider (the runner records ``payload.meta.provider``)."""
    return {r["day"]: r["n"] for r in many(db, """
        SELECT substr(created_at, 1, 10) AS day, count(*) AS n FROM messages
        WHERE direction = 'out' AND sent_by = 'bot' AND created_at >= ? AND created_at < ?
          AND json_extract(payload, '$.meta.provider') IS NOT NULL
        GROUP BY day""", [since, until])}


def agent_first_responses(db: Database, since: str, until: str) -> dict[str, Any]:
    """``{count, median_seconds}`` of agents' first responses answered in the range."""
    rows = db.conn.execute("""
        SELECT conversation_id, direction, sent_by, created_at FROM messages
        WHERE conversation_id IN (SELECT DISTINCT conversation_id FROM messages
                                  WHERE sent_by = 'user' AND created_at >= ? AND created_at < ?)
          AND created_at < ? AND sent_by != 'echo'
        ORDER BY conversation_id, id""", [since, until, until]).fetchall()
    waits: list[float] = []
    current = None
    waiting_since: str | None = None
    for conversation_id, direction, sent_by, created_at in rows:
        if conversation_id != current:
            current, waiting_since = conversation_id, None
        if direction == "in" and waiting_since is None:
            waiting_since = created_at
        elif sent_by == "user":
            if waiting_since is not None and created_at >= since:
                waits.append((from_iso(created_at) - from_iso(waiting_since)).total_seconds())
            waiting_since = None
    return {"count": len(waits), "median_seconds": statistics.median(waits) if waits else None}
