-- Growth entry points per channel: its public handle (Instagram username, WhatsApp display
-- number) for ref links, and the conversation profile pushed to Meta.
CREATE TABLE channel_profiles (
    channel_id INTEGER PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    handle TEXT,
    profile TEXT NOT NULL DEFAULT '{}',
    pushed_at TEXT,
    push_error TEXT,
    updated_at TEXT NOT NULL
);
