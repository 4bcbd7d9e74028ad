-- The workspace: channels, contacts, conversations, messages, the webhook journal, the outbox,
-- the team and its API tokens. AUTOINCREMENT keeps erased ids from being reused (a client
-- holding the id of an erased contact must never see another person under it). Times are ISO-8601 UTC text with milliseconds
-- ('2026-11-26T19:18:07.123Z'), so they compare correctly as strings.

CREATE TABLE workspace_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A connected Meta asset: a Facebook Page, an Instagram professional account or a WhatsApp
-- phone number. external_id is the id Meta routes on (page id, IG account id, phone_number_id).
CREATE TABLE channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL CHECK (type IN ('messenger', 'instagram', 'whatsapp')),
    external_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'needs_reauth', 'disconnected')),
    status_reason TEXT,
    access_token_enc TEXT,          -- AES-256-GCM (FieldCipher), NULL once disconnected
    waba_id TEXT,
    page_id TEXT,
    rate_limit INTEGER,             -- sends per second; NULL = the setting for the type
    connected_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (type, external_id)
);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    external_id TEXT NOT NULL,      -- PSID, IGSID, WhatsApp BSUID (else wa_id)
    wa_id TEXT,                     -- WhatsApp phone-based id, when Meta shows it
    bsuid TEXT,                     -- WhatsApp business-scoped user id (user_id)
    parent_bsuid TEXT,
    name TEXT,
    first_name TEXT,
    last_name TEXT,
    username TEXT,
    phone TEXT,
    name_locked INTEGER NOT NULL DEFAULT 0,  -- an agent corrected the name: keep it
    fields TEXT NOT NULL DEFAULT '{}',   -- JSON object of custom fields
    subscribed INTEGER NOT NULL DEFAULT 1,
    marketing_opt_out INTEGER NOT NULL DEFAULT 0,
    last_inbound_at TEXT,           -- Meta's timestamp of the last window-opening event
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (channel_id, external_id)
);
CREATE UNIQUE INDEX contacts_wa_id ON contacts (channel_id, wa_id) WHERE wa_id IS NOT NULL;
CREATE UNIQUE INDEX contacts_bsuid ON contacts (channel_id, bsuid) WHERE bsuid IS NOT NULL;
CREATE INDEX contacts_created ON contacts (created_at);

CREATE TABLE contact_tags (
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
) WITHOUT ROWID;
CREATE INDEX contact_tags_tag ON contact_tags (tag, contact_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'agent')),
    password_hash TEXT,             -- argon2id
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE, -- SHA-256 of the token (tokens are 256-bit random)
    prefix TEXT NOT NULL,            -- first characters, to recognise a token in lists
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'agent')),
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);

-- One conversation per contact: it opens and closes, it is never duplicated.
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL UNIQUE REFERENCES contacts(id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    assignee_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    bot_paused INTEGER NOT NULL DEFAULT 0,
    unread_count INTEGER NOT NULL DEFAULT 0,
    last_message_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX conversations_last_message ON conversations (last_message_at DESC, id DESC);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    kind TEXT NOT NULL,
    text TEXT,
    payload TEXT NOT NULL DEFAULT '{}',       -- JSON: what the kind carries beyond text
    attachments TEXT NOT NULL DEFAULT '[]',   -- JSON list of {type, url, ...}
    external_id TEXT,                         -- mid / wamid / comment id
    reply_to TEXT,                            -- external id of the message replied to
    status TEXT NOT NULL
        CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'read', 'failed')),
    error_code TEXT,
    error_message TEXT,
    sent_by TEXT NOT NULL CHECK (sent_by IN ('contact', 'bot', 'user', 'echo')),
    sent_by_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    messaging_type TEXT,                      -- RESPONSE / MESSAGE_TAG used for the send
    tag TEXT,
    occurred_at TEXT NOT NULL,                -- Meta's timestamp (inbound) or enqueue time
    sent_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX messages_external_id ON messages (channel_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- Raw webhook bodies, committed before Meta gets its 200; processed in id order.
CREATE TABLE webhook_journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    body BLOB,                                 -- NULL once purged
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processed', 'failed')),
    processed_at TEXT,
    events INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    error TEXT                                 -- why (part of) the body could not be used; no PII
);
CREATE INDEX webhook_journal_pending ON webhook_journal (id) WHERE state = 'pending';
CREATE INDEX webhook_journal_processed ON webhook_journal (processed_at)
    WHERE body IS NOT NULL AND state = 'processed';

-- Which contacts a journal row touched: erasure removes their raw events too.
CREATE TABLE webhook_journal_contacts (
    journal_id INTEGER NOT NULL REFERENCES webhook_journal(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL,
    PRIMARY KEY (journal_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX webhook_journal_contacts_contact ON webhook_journal_contacts (contact_id);

-- Dedupe keys of processed events (mid, wamid, wamid+status, comment id+verb, ...).
CREATE TABLE seen_events (
    key TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_events_seen_at ON seen_events (seen_at);

-- Outbound messages waiting to be sent (the message row holds the content and status).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending')),
    attempts INTEGER NOT NULL DEFAULT 0,
    parts_done INTEGER NOT NULL DEFAULT 0,   -- request bodies already accepted by Meta
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id);
CREATE INDEX outbox_conversation ON outbox (conversation_id, id);
