-- Integrations: the Google Sheets connection, OAuth states, and outbound webhooks.
-- Secrets (refresh tokens, client secrets, webhook signing secrets, webhook URLs, which often
-- carry a token) are AES-256-GCM field-encrypted (`*_enc`) on top of SQLCipher.

-- One Google connection per workspace: through the Connect button (`oauth`, the hosted client
-- of AAT_GOOGLE_CLIENT_ID) or a self-hoster's own client (`manual`, its secret stored here).
-- Access tokens are never stored: they live in memory for their hour.
CREATE TABLE google_connection (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    source TEXT NOT NULL CHECK (source IN ('oauth', 'manual')),
    client_id TEXT NOT NULL,
    client_secret_enc TEXT,
    refresh_token_enc TEXT NOT NULL,
    email TEXT,
    scope TEXT,
    status TEXT NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'needs_reauth')),
    status_reason TEXT,
    connected_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- OAuth authorization requests in flight: single use, ten minutes. Only hashes of the state
-- and of the browser-binding cookie are kept; the PKCE verifier is encrypted.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    verifier_enc TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE webhook_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url_enc TEXT NOT NULL,
    events TEXT NOT NULL,                       -- JSON list of event types
    secret_enc TEXT NOT NULL,
    description TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One row per (subscription, event): the durable promise to deliver it. `refs` copies the
-- event's ids (the events table is purged after a week); the body is built from the current
-- state of the resource at each attempt, so nothing a subscriber wrote is stored twice.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id INTEGER NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    refs TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    expires_at TEXT NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    delivered_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE status != 'pending';

CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    status INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- The last domain event the webhook dispatcher has turned into deliveries.
CREATE TABLE webhook_dispatch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL
);
