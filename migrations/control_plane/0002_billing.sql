-- Entitlements pushed to tenants, Stripe subscriptions, processed Stripe events, billing history.

-- The last entitlement token the control plane got accepted by a tenant's appliance (or the
-- last failure to). The sweep re-pushes when the plan changed or less than 7 days are left.
CREATE TABLE tenant_entitlements (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    plan TEXT,
    issued_at TEXT,
    expires_at TEXT,
    pushed_at TEXT,
    last_error TEXT,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- A checkout started before a tenant exists: its id is the Checkout Session's
-- client_reference_id; checkout.session.completed turns it into a tenant.
CREATE TABLE signups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    plan TEXT NOT NULL,
    checkout_session_id TEXT UNIQUE,
    tenant_id TEXT REFERENCES tenants(id),
    created_at TEXT NOT NULL,
    completed_at TEXT
) WITHOUT ROWID;

-- One Stripe subscription per tenant; `status` is Stripe's, as last retrieved from Stripe.
CREATE TABLE subscriptions (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    customer_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    price_id TEXT,
    past_due_since TEXT,           -- start of the grace period (suspended when it runs out)
    canceled_at TEXT,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);

-- Stripe events already handled (idempotency by event id).
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    received_at TEXT NOT NULL,
    outcome TEXT NOT NULL
) WITHOUT ROWID;

-- Invoices paid and failed, kept 7 years (keep_until) for the books.
CREATE TABLE billing_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT,
    customer_id TEXT NOT NULL,
    invoice_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    at TEXT NOT NULL,
    keep_until TEXT NOT NULL,
    UNIQUE (invoice_id, event_type)
);
CREATE INDEX billing_history_tenant ON billing_history (tenant_id, at);
