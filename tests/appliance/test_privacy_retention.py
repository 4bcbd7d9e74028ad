"""Retention rules with a frozen clock: what is older than its retention goes, the rest stays
(contacts and messages are never aged out by the appliance), a second run removes nothing,
rules for tables that do not exist are skipped, and counts are logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appliance.privacy import retention, tasks
from appliance.queue import create_huey
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso
from tests.appliance.api_helpers import execute, rows, value

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return to_iso(NOW - timedelta(**delta))


def _run_with_steps(workspace: Workspace, ats: list[str]) -> None:
    def write(db: Any) -> None:
        db.execute("INSERT INTO channels (type, external_id, created_at, updated_at) VALUES ('messenger', '1', 'x', 'x')")
        db.execute("INSERT INTO contacts (channel_id, external_id, created_at, updated_at) VALUES (1, '2', 'x', 'x')")
        db.execute("""INSERT INTO flow_runs (flow_id, version, contact_id, status, trigger, started_at, updated_at)
                      VALUES (1, 1, 1, 'completed', 'keyword', 'x', 'x')""")
        db.conn.executemany("INSERT INTO flow_step_events (run_id, flow_id, version, step, event, at) "
                            "VALUES (1, 1, 1, 'hello', 'entered', ?)", [(at,) for at in ats])

    workspace.gateway.write_sync(write)


def _journal(workspace: Workspace, state: str, received_at: str) -> None:
    execute(workspace, "INSERT INTO webhook_journal (received_at, body, state, processed_at) VALUES (?, ?, ?, ?)",
            [received_at, b'{"object":"page"}', state, received_at])


def test_step_statistics_older_than_the_log_retention_go(workspace: Workspace, settings: Settings) -> None:
    _run_with_steps(workspace, [ago(days=91), ago(days=90, seconds=1), ago(days=89), ago(hours=1)])
    summary = retention.run(workspace.gateway, settings, NOW)
    assert summary["removed"]["flow_step_events"] == 2
    assert [r["at"] for r in rows(workspace, "SELECT at FROM flow_step_events ORDER BY at")] == [
        ago(days=89), ago(hours=1)]


def test_big_deletes_run_in_batches_until_done(workspace: Workspace, settings: Settings) -> None:
    _run_with_steps(workspace, [ago(days=100)] * (retention.BATCH * 2 + 7))
    assert retention.run(workspace.gateway, settings, NOW)["removed"]["flow_step_events"] == retention.BATCH * 2 + 7
    assert value(workspace, "SELECT count(*) FROM flow_step_events") == 0


def test_failed_deliveries_keep_their_body_for_the_log_retention(workspace: Workspace, settings: Settings) -> None:
    _journal(workspace, "failed", ago(days=91))
    _journal(workspace, "failed", ago(days=10))
    _journal(workspace, "processed", ago(days=91))  # ingest.purge_journal's to delete, not this job's
    retention.run(workspace.gateway, settings, NOW)
    assert rows(workspace, "SELECT state, body IS NULL AS blank FROM webhook_journal ORDER BY id") == [
        {"state": "failed", "blank": 1}, {"state": "failed", "blank": 0}, {"state": "processed", "blank": 0}]


def test_the_retention_days_are_a_setting(workspace: Workspace, settings: Settings) -> None:
    _run_with_steps(workspace, [ago(days=31), ago(days=29)])
    short = settings.model_copy(update={"log_retention_days": 30.0})
    assert retention.run(workspace.gateway, short, NOW)["removed"]["flow_step_events"] == 1


def test_expired_sessions_and_links_go(workspace: Workspace, settings: Settings) -> None:
    def write(db: Any) -> None:
        db.execute("INSERT INTO users (email, role, created_at) VALUES ('a@example.com', 'owner', 'x')")
        for token, last_seen, expires in (("live", ago(minutes=5), ago(days=-1)), ("expired", ago(minutes=5), ago(seconds=1)),
                                          ("idle", ago(days=2), ago(days=-1))):
            db.execute("""INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
                          VALUES (?, 1, 'c', 'x', ?, ?)""", [token, last_seen, expires])
        for token, expires, used in (("valid", ago(days=-1), None), ("old", ago(seconds=1), None),
                                     ("used", ago(days=-1), ago(minutes=1))):
            db.execute("""INSERT INTO one_time_links (token_hash, purpose, user_id, created_at, expires_at, used_at)
                          VALUES (?, 'invite', 1, 'x', ?, ?)""", [token, expires, used])

    workspace.gateway.write_sync(write)
    summary = retention.run(workspace.gateway, settings, NOW)
    assert (summary["removed"]["sessions"], summary["removed"]["one_time_links"]) == (2, 2)
    assert [r["token_hash"] for r in rows(workspace, "SELECT token_hash FROM sessions")] == ["live"]
    assert [r["token_hash"] for r in rows(workspace, "SELECT token_hash FROM one_time_links")] == ["valid"]


def test_outbound_webhook_logs_go_after_the_log_retention(workspace: Workspace, settings: Settings) -> None:
    def write(db: Any) -> None:
        db.execute("""INSERT INTO webhook_subscriptions (url_enc, events, secret_enc, created_at, updated_at)
                      VALUES ('u', '[]', 's', 'x', 'x')""")
        for event, status, updated in ((1, "delivered", ago(days=91)), (2, "dead", ago(days=91)),
                                       (3, "pending", ago(days=91)), (4, "delivered", ago(days=1))):
            db.execute("""INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, refs, occurred_at,
                              status, expires_at, created_at, updated_at)
                          VALUES (1, ?, 'message.created', '{}', 'x', ?, 'x', 'x', ?)""", [event, status, updated])
            db.execute("INSERT INTO webhook_attempts (delivery_id, attempt, at, duration_ms) VALUES (?, 1, ?, 5)",
                       [event, updated])

    workspace.gateway.write_sync(write)
    summary = retention.run(workspace.gateway, settings, NOW)
    assert (summary["removed"]["webhook_attempts"], summary["removed"]["webhook_deliveries"]) == (3, 2)
    assert [r["status"] for r in rows(workspace, "SELECT status FROM webhook_deliveries ORDER BY id")] == [
        "pending", "delivered"]


def test_a_second_run_removes_nothing(workspace: Workspace, settings: Settings) -> None:
    _run_with_steps(workspace, [ago(days=91)])
    _journal(workspace, "failed", ago(days=91))
    first = retention.run(workspace.gateway, settings, NOW)
    assert sum(first["removed"].values()) == 2
    again = retention.run(workspace.gateway, settings, NOW)
    assert sum(again["removed"].values()) == 0
    assert again["deletion_requests_completed"] == 0


def test_every_rule_applies_to_this_schema(workspace: Workspace, settings: Settings) -> None:
    summary = retention.run(workspace.gateway, settings, NOW)
    assert summary["skipped"] == []
    assert set(summary["removed"]) == {rule.name for rule in retention.RULES}


def test_a_rule_whose_table_does_not_exist_is_skipped(workspace: Workspace, settings: Settings) -> None:
    """A feature's table may come later: its rule reports ``None`` instead of failing."""
    rule = retention.Rule("later", "table_of_a_later_feature", ("at",), "at < :logs_before")
    params = retention.cutoffs(settings, NOW)
    assert workspace.gateway.write_sync(retention.run_rule, rule, params) is None


def test_stale_signin_throttles_go_once_unlocked(workspace: Workspace, settings: Settings) -> None:
    """Throttle rows hold team members' addresses and IPs: gone a day after their window."""
    for key, start, locked in (("email:old@example.com", ago(days=2), None),
                               ("ip:192.0.2.7", ago(days=2), ago(days=-1)),  # still locked
                               ("email:recent@example.com", ago(minutes=5), None)):
        execute(workspace, "INSERT INTO signin_throttle (key, failures, window_start, locked_until) VALUES (?, 3, ?, ?)",
                [key, start, locked])
    assert retention.run(workspace.gateway, settings, NOW)["removed"]["signin_throttle"] == 1
    assert [r["key"] for r in rows(workspace, "SELECT key FROM signin_throttle ORDER BY key")] == [
        "email:recent@example.com", "ip:192.0.2.7"]


def test_conversations_are_kept_however_old(workspace: Workspace, settings: Settings) -> None:
    """Messages and contacts are kept while the subscription is active: the appliance never ages
    them out; the control plane destroys the whole workspace 30 days after cancellation."""
    _run_with_steps(workspace, [ago(days=1)])

    def write(db: Any) -> None:
        db.execute("INSERT INTO conversations (contact_id, channel_id, created_at, updated_at) VALUES (1, 1, ?, ?)",
                   [ago(days=3650), ago(days=3650)])
        db.execute("""INSERT INTO messages (conversation_id, contact_id, channel_id, direction, kind, text, status,
                          sent_by, occurred_at, created_at, updated_at)
                      VALUES (1, 1, 1, 'in', 'text', 'ten years ago', 'received', 'contact', ?, ?, ?)""",
                   [ago(days=3650)] * 3)

    workspace.gateway.write_sync(write)
    before = {t: rows(workspace, f"SELECT * FROM {t}") for t in ("contacts", "conversations", "messages", "flow_runs")}
    retention.run(workspace.gateway, settings, NOW + timedelta(days=3650))
    assert {t: rows(workspace, f"SELECT * FROM {t}") for t in before} == before


def test_counts_are_logged(workspace: Workspace, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    _run_with_steps(workspace, [ago(days=91)])
    with caplog.at_level(logging.INFO, logger="aat.privacy"):
        retention.run(workspace.gateway, settings, NOW)
    [record] = [r for r in caplog.records if r.getMessage() == "retention run"]
    assert record.removed["flow_step_events"] == 1  # type: ignore[attr-defined]
    assert record.deletion_requests_completed == 0  # type: ignore[attr-defined]


def test_the_job_is_a_huey_periodic_task_every_quarter_hour(runtime: Any) -> None:
    huey = create_huey(runtime.settings.data_dir, immediate=True)
    tasks.register(huey, runtime)
    due = {t.name: t for t in huey.read_periodic(datetime(2026, 6, 1, 12, 15))}
    assert "privacy.retention" in due
    assert "privacy.retention" not in {t.name for t in huey.read_periodic(datetime(2026, 6, 1, 12, 16))}
    summary = huey.execute(due["privacy.retention"])
    assert set(summary) == {"removed", "skipped", "deletion_requests_completed"}
