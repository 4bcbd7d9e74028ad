-- Data-subject rights: Meta's data-deletion and deauthorize callbacks, and the history of a
-- contact's consent (subscription and marketing preference) for the access export.

-- One row per signed request Meta sent (a retried callback finds its row by request_hash and
-- gets the same confirmation code). user_id is Meta's app-scoped user id, kept only until the
-- erasure ran; afterwards the row says what was erased and when, never whom.
CREATE TABLE deletion_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL UNIQUE,              -- confirmation code, alphanumeric, unguessable
    request_hash TEXT NOT NULL UNIQUE,      -- SHA-256 of the signed_request
    kind TEXT NOT NULL CHECK (kind IN ('data_deletion', 'deauthorize')),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'refused')),
    user_id TEXT,                           -- NULL once completed or refused
    requested_at TEXT NOT NULL,
    due_at TEXT NOT NULL,                   -- requested_at + AAT_ERASURE_GRACE_DAYS
    completed_at TEXT,
    contacts_erased INTEGER NOT NULL DEFAULT 0,
    messages_erased INTEGER NOT NULL DEFAULT 0,
    channels TEXT NOT NULL DEFAULT '[]',    -- JSON list of the channel types erased from
    reason TEXT                             -- why it was refused (shown on the status page)
);
CREATE INDEX deletion_requests_due ON deletion_requests (due_at) WHERE status = 'pending';

-- Every change of a contact's subscription or marketing preference, whatever made it (the
-- contact's STOP/START words, an agent, Meta's WhatsApp marketing preference, an objection).
CREATE TABLE consent_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    subject TEXT NOT NULL CHECK (subject IN ('subscribed', 'marketing_opt_out')),
    value INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX consent_log_contact ON consent_log (contact_id, id);

CREATE TRIGGER consent_log_subscribed AFTER UPDATE OF subscribed ON contacts
    WHEN old.subscribed IS NOT new.subscribed
BEGIN
    INSERT INTO consent_log (contact_id, subject, value, at)
        VALUES (new.id, 'subscribed', new.subscribed, new.updated_at);
END;

CREATE TRIGGER consent_log_marketing AFTER UPDATE OF marketing_opt_out ON contacts
    WHEN old.marketing_opt_out IS NOT new.marketing_opt_out
BEGIN
    INSERT INTO consent_log (contact_id, subject, value, at)
        VALUES (new.id, 'marketing_opt_out', new.marketing_opt_out, new.updated_at);
END;

-- Erasing a contact deletes its runs' step log (and the FK cascade looks it up by run): without
-- this index each erasure scans the whole step log.
CREATE INDEX flow_step_events_run ON flow_step_events (run_id);
