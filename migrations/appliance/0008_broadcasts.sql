-- Broadcasts: one message to a segment of contacts, sent through the outbox at Meta's limits.
-- See appliance/broadcasts/__init__.py for the life of a broadcast and of each recipient.

CREATE TABLE broadcasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'completed', 'cancelled')),
    status_reason TEXT,                        -- why it paused by itself (a template Meta paused)
    audience TEXT NOT NULL,                    -- JSON segment (appliance/broadcasts/audience.py)
    message TEXT NOT NULL,                     -- JSON: text + buttons, or a WhatsApp template
    send_at TEXT,                              -- UTC; NULL = as soon as it is started
    timezone TEXT,                             -- the IANA zone send_at was given in
    -- Recipients are materialised in chunks of contact ids up to the largest id when sending
    -- began (through_contact_id); cursor_contact_id is how far that has got.
    through_contact_id INTEGER,
    cursor_contact_id INTEGER NOT NULL DEFAULT 0,
    materialized INTEGER NOT NULL DEFAULT 0,
    -- Recipients per state, kept by the triggers below (never written by hand).
    n_total INTEGER NOT NULL DEFAULT 0,
    n_pending INTEGER NOT NULL DEFAULT 0,
    n_queued INTEGER NOT NULL DEFAULT 0,
    n_skipped INTEGER NOT NULL DEFAULT 0,
    n_sent INTEGER NOT NULL DEFAULT 0,
    n_delivered INTEGER NOT NULL DEFAULT 0,
    n_read INTEGER NOT NULL DEFAULT 0,
    n_failed INTEGER NOT NULL DEFAULT 0,
    skipped_reasons TEXT NOT NULL DEFAULT '{}',  -- JSON {reason: count}, kept by the triggers
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT
);
CREATE INDEX broadcasts_active ON broadcasts (status, send_at) WHERE status IN ('scheduled', 'sending');

-- One row per contact in the audience. queued: a message is in the outbox (message_id);
-- sent/delivered/read/failed follow that message's status (trigger on messages); skipped:
-- the policy said no (reason), or the broadcast was cancelled before it got there.
CREATE TABLE broadcast_recipients (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'queued', 'skipped', 'sent', 'delivered', 'read', 'failed')),
    reason TEXT,
    message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    decided_at TEXT,
    PRIMARY KEY (broadcast_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (broadcast_id, contact_id)
    WHERE state = 'pending';
CREATE UNIQUE INDEX broadcast_recipients_message ON broadcast_recipients (message_id)
    WHERE message_id IS NOT NULL;

CREATE TRIGGER broadcast_recipients_counted AFTER INSERT ON broadcast_recipients BEGIN
    UPDATE broadcasts SET n_total = n_total + 1,
        n_pending = n_pending + (NEW.state = 'pending'), n_queued = n_queued + (NEW.state = 'queued'),
        n_skipped = n_skipped + (NEW.state = 'skipped'), n_sent = n_sent + (NEW.state = 'sent'),
        n_delivered = n_delivered + (NEW.state = 'delivered'), n_read = n_read + (NEW.state = 'read'),
        n_failed = n_failed + (NEW.state = 'failed'),
        skipped_reasons = CASE WHEN NEW.state = 'skipped' THEN json_set(skipped_reasons,
            '$.' || NEW.reason, COALESCE(json_extract(skipped_reasons, '$.' || NEW.reason), 0) + 1)
            ELSE skipped_reasons END
    WHERE id = NEW.broadcast_id;
END;

CREATE TRIGGER broadcast_recipients_moved AFTER UPDATE OF state ON broadcast_recipients
WHEN OLD.state != NEW.state BEGIN
    UPDATE broadcasts SET
        n_pending = n_pending + (NEW.state = 'pending') - (OLD.state = 'pending'),
        n_queued = n_queued + (NEW.state = 'queued') - (OLD.state = 'queued'),
        n_skipped = n_skipped + (NEW.state = 'skipped') - (OLD.state = 'skipped'),
        n_sent = n_sent + (NEW.state = 'sent') - (OLD.state = 'sent'),
        n_delivered = n_delivered + (NEW.state = 'delivered') - (OLD.state = 'delivered'),
        n_read = n_read + (NEW.state = 'read') - (OLD.state = 'read'),
        n_failed = n_failed + (NEW.state = 'failed') - (OLD.state = 'failed')
    WHERE id = NEW.broadcast_id;
    UPDATE broadcasts SET skipped_reasons = json_set(skipped_reasons, '$.' || OLD.reason,
        json_extract(skipped_reasons, '$.' || OLD.reason) - 1)
    WHERE id = NEW.broadcast_id AND OLD.state = 'skipped';
    UPDATE broadcasts SET skipped_reasons = json_set(skipped_reasons, '$.' || NEW.reason,
        COALESCE(json_extract(skipped_reasons, '$.' || NEW.reason), 0) + 1)
    WHERE id = NEW.broadcast_id AND NEW.state = 'skipped';
END;

-- An erased contact leaves every broadcast it was in (ON DELETE CASCADE), and its counts.
CREATE TRIGGER broadcast_recipients_erased AFTER DELETE ON broadcast_recipients BEGIN
    UPDATE broadcasts SET n_total = n_total - 1,
        n_pending = n_pending - (OLD.state = 'pending'), n_queued = n_queued - (OLD.state = 'queued'),
        n_skipped = n_skipped - (OLD.state = 'skipped'), n_sent = n_sent - (OLD.state = 'sent'),
        n_delivered = n_delivered - (OLD.state = 'delivered'), n_read = n_read - (OLD.state = 'read'),
        n_failed = n_failed - (OLD.state = 'failed'),
        skipped_reasons = CASE WHEN OLD.state = 'skipped' THEN json_set(skipped_reasons,
            '$.' || OLD.reason, json_extract(skipped_reasons, '$.' || OLD.reason) - 1)
            ELSE skipped_reasons END
    WHERE id = OLD.broadcast_id;
END;

-- Statuses roll up: whatever moves a broadcast message's status (the sender, an echo, a
-- WhatsApp status, a Messenger watermark) moves its recipient with it. Message statuses only
-- move forward (appliance/inbox/store.py advance_status), so recipients do too.
CREATE TRIGGER messages_broadcast_status AFTER UPDATE OF status ON messages
WHEN NEW.status != OLD.status AND NEW.status IN ('sent', 'delivered', 'read', 'failed') BEGIN
    UPDATE broadcast_recipients SET state = NEW.status WHERE message_id = NEW.id;
END;

-- The WhatsApp template catalogue, per WhatsApp Business Account: synced from
-- GET /{waba-id}/message_templates, kept current by message_template_status_update webhooks.
CREATE TABLE whatsapp_templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    waba_id TEXT NOT NULL,
    template_id TEXT,                          -- Meta's id
    name TEXT NOT NULL,
    language TEXT NOT NULL,
    status TEXT NOT NULL,                      -- APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ...
    category TEXT,                             -- MARKETING, UTILITY, AUTHENTICATION
    parameter_format TEXT,                     -- POSITIONAL ({{1}}) or NAMED ({{first_name}})
    components TEXT NOT NULL DEFAULT '[]',     -- JSON, as Meta returns them
    status_reason TEXT,
    synced_at TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (waba_id, name, language)
);

-- Which due outbox rows the sender claims first (lower first): agent replies and flow messages
-- (0) before broadcast messages (1), so a broadcast's backlog never delays a conversation.
ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
