-- The audit log of admin actions: who, what, when, from where. Hash-chained: each row's hash
-- covers its content and the previous row's hash, so an edited or deleted row breaks the chain
-- (`aat-appliance audit verify`). It records that something happened to a contact (an
-- erasure), never who the contact was.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor_kind TEXT NOT NULL CHECK (actor_kind IN ('user', 'token', 'cli', 'system', 'meta')),
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
