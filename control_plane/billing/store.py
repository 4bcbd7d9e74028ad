"""Sign-ups, subscriptions, handled Stripe events and billing history. SQL only."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one

__all__ = [
    "insert_signup", "get_signup", "signup_by_session", "complete_signup", "get_subscription", "subscriptions_of_account", "subscription_by_stripe_id",
    "subscription_by_customer", "upsert_subscription", "event_seen", "record_event", "add_history",
    "history", "past_grace",
]


def insert_signup(db: Database, *, signup_id: str, name: str, email: str | None, plan: str,
                  checkout_session_id: str, now: str, account_id: str) -> None:
    db.conn.execute("INSERT INTO signups (id, name, email, plan, checkout_session_id, created_at, account_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [signup_id, name, email, plan, checkout_session_id, now, account_id])


def get_signup(db: Database, signup_id: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM signups WHERE id = ?", [signup_id])


def signup_by_session(db: Database, checkout_session_id: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM signups WHERE checkout_session_id = ?", [checkout_session_id])


def complete_signup(db: Database, signup_id: str, tenant_id: str | None, now: str) -> None:
    db.conn.execute("UPDATE signups SET tenant_id = ?, completed_at = ? WHERE id = ?", [tenant_id, now, signup_id])


def get_subscription(db: Database, tenant_id: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM subscriptions WHERE tenant_id = ?", [tenant_id])


def subscriptions_of_account(db: Database, account_id: str) -> list[dict[str, Any]]:
    """Subscriptions of the tenants the account's own checkouts created, newest first."""
    return many(db, "SELECT s.* FROM subscriptions s JOIN signups u ON u.tenant_id = s.tenant_id "
                "WHERE u.account_id = ? ORDER BY s.updated_at DESC, s.tenant_id", [account_id])


def subscription_by_stripe_id(db: Database, subscription_id: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM subscriptions WHERE subscription_id = ?", [subscription_id])


def subscription_by_customer(db: Database, customer_id: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM subscriptions WHERE customer_id = ? ORDER BY updated_at DESC LIMIT 1", [customer_id])


def upsert_subscription(db: Database, *, tenant_id: str, customer_id: str, subscription_id: str, status: str,
                        price_id: str | None, past_due_since: str | None, canceled_at: str | None, now: str) -> None:
    db.conn.execute(
        "INSERT INTO subscriptions (tenant_id, customer_id, subscription_id, status, price_id, past_due_since, "
        "canceled_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET "
        "customer_id = excluded.customer_id, subscription_id = excluded.subscription_id, status = excluded.status, "
        "price_id = excluded.price_id, past_due_since = excluded.past_due_since, canceled_at = excluded.canceled_at, "
        "updated_at = excluded.updated_at",
        [tenant_id, customer_id, subscription_id, status, price_id, past_due_since, canceled_at, now])


def event_seen(db: Database, event_id: str) -> bool:
    return one(db, "SELECT 1 AS x FROM stripe_events WHERE id = ?", [event_id]) is not None


def record_event(db: Database, event_id: str, event_type: str, outcome: str, now: str) -> bool:
    """``False`` when the event was recorded already (a concurrent duplicate)."""
    cursor = db.conn.execute("INSERT OR IGNORE INTO stripe_events (id, type, received_at, outcome) VALUES (?, ?, ?, ?)",
                             [event_id, event_type, now, outcome[:200]])
    return cursor.rowcount > 0


def add_history(db: Database, *, tenant_id: str | None, customer_id: str, invoice_id: str, event_type: str,
                amount_cents: int, currency: str, at: str, keep_until: str) -> None:
    db.conn.execute(
        "INSERT OR IGNORE INTO billing_history (tenant_id, customer_id, invoice_id, event_type, amount_cents, currency, "
        "at, keep_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [tenant_id, customer_id, invoice_id, event_type, amount_cents, currency, at, keep_until])


def history(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM billing_history WHERE tenant_id = ? ORDER BY at, id", [tenant_id])


def past_grace(db: Database, started_before: str) -> list[str]:
    """Tenants still running whose subscription has been past_due since before ``started_before``."""
    return [r["tenant_id"] for r in many(
        db, "SELECT s.tenant_id FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id "
        "WHERE s.status IN ('past_due', 'unpaid') AND s.past_due_since < ? AND t.status = 'active'",
        [started_before])]
