-- The control plane's own database (SQLCipher, keyed by its data key).

-- A tenant is one workspace: one appliance somewhere (a process, a container, a pod).
-- `status` is the lifecycle state the control plane drives the appliance towards; the
-- secrets are encrypted field by field with the control plane's master key and set to NULL
-- at teardown (with the appliance's own key file shredded, nothing can open its data again).
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('provisioning', 'active', 'suspended', 'deleting', 'deleted')),
    plan TEXT,
    owner_email TEXT,
    provisioner TEXT NOT NULL,
    url TEXT,                      -- where the control plane reaches the appliance
    port INTEGER,                  -- local provisioner: the loopback port
    master_key_enc TEXT,
    webhook_secret_enc TEXT,
    api_token_enc TEXT,            -- the control plane's own token in the appliance (owner)
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    suspended_at TEXT,
    delete_after TEXT,
    deleted_at TEXT
);
CREATE INDEX tenants_status ON tenants (status);

-- Connected channels: the routing table (asset id -> tenant) and the token the control plane
-- checks daily (debug_token). Disconnecting deletes the row, token included.
CREATE TABLE channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    type TEXT NOT NULL CHECK (type IN ('messenger', 'instagram', 'whatsapp')),
    external_id TEXT NOT NULL,     -- page id, Instagram account id, WhatsApp phone_number_id
    name TEXT NOT NULL DEFAULT '',
    waba_id TEXT,
    page_id TEXT,
    token_enc TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth')),
    status_reason TEXT,
    token_expires_at TEXT,
    checked_at TEXT,
    owner_notified_at TEXT,
    appliance_channel_id TEXT,
    connected_at TEXT NOT NULL,
    UNIQUE (type, external_id)
);
CREATE INDEX channels_tenant ON channels (tenant_id);

-- The forwarding journal: one row per tenant per Meta delivery, written before the 200.
-- Bodies are dropped as soon as they are delivered (metadata stays), dead letters' bodies
-- after 7 days.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    object TEXT NOT NULL,
    entries INTEGER NOT NULL,
    body BLOB,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    received_at TEXT NOT NULL,
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    delivered_at TEXT,
    dead_at TEXT,
    last_error TEXT
);
CREATE INDEX deliveries_pending ON deliveries (tenant_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, id);

-- Entries for assets nobody connected yet, kept 24 h so that a late onboarding claims them.
CREATE TABLE unclaimed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_type TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    object TEXT NOT NULL,
    entry BLOB NOT NULL,
    received_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX unclaimed_asset ON unclaimed (channel_type, asset_id);
CREATE INDEX unclaimed_expiry ON unclaimed (expires_at);

-- Which tenants saw which Meta user (keyed HMAC of the id, never the id): the data-deletion
-- callback fans out to those tenants only.
CREATE TABLE known_users (
    user_hash TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    PRIMARY KEY (user_hash, tenant_id)
) WITHOUT ROWID;

CREATE TABLE deletion_requests (
    code TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL UNIQUE,
    tenants INTEGER NOT NULL,
    forwarded INTEGER NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE admin_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 (tokens are 256-bit random)
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);

-- Short-lived API tokens minted in a tenant's appliance for support; revoked when they expire.
CREATE TABLE support_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,        -- the token's name in the appliance
    prefix TEXT NOT NULL,
    issued_by TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX support_tokens_expiry ON support_tokens (expires_at) WHERE revoked_at IS NULL;

-- The admin audit log, hash-chained like the appliance's (appliance.audit.store writes it).
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor_kind TEXT NOT NULL CHECK (actor_kind IN ('admin', 'cli', 'system', 'meta')),
    actor_id TEXT,
    actor_label TEXT,
    action TEXT NOT NULL,
    target_kind TEXT,
    target_id TEXT,
    ip TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
