-- Domain events, written in the same transaction as the change they describe (a
-- transactional outbox): live updates (SSE) and outbound webhooks read them in order and resume
-- from the last id they handled. Ids only; the content is read from its own table when used.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    conversation_id INTEGER,
    contact_id INTEGER,
    message_id INTEGER,
    flow_id INTEGER,
    run_id INTEGER,
    user_id INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX events_created ON events (created_at);
