-- Flows: drafts, immutable published versions, runs (one active per contact), the step log
-- behind the builder's stats, durable timers, and private replies sent per comment.

CREATE TABLE flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    document TEXT NOT NULL,                 -- the draft, as last saved (JSON)
    published_version INTEGER,              -- NULL until first published
    draft_updated_at TEXT NOT NULL,
    published_at TEXT,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);

CREATE TABLE flow_versions (
    flow_id INTEGER NOT NULL REFERENCES flows(id),
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (flow_id, version)
) WITHOUT ROWID;

CREATE TABLE flow_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    status TEXT NOT NULL
        CHECK (status IN ('active', 'completed', 'interrupted', 'loop_limit', 'handed_off', 'error')),
    trigger TEXT NOT NULL,
    step TEXT,
    waiting TEXT,
    retries INTEGER NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    timer TEXT,
    origin_comment TEXT,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE UNIQUE INDEX flow_runs_one_active ON flow_runs (contact_id) WHERE status = 'active';
CREATE INDEX flow_runs_flow ON flow_runs (flow_id, started_at);

CREATE TABLE flow_step_events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES flow_runs(id) ON DELETE CASCADE,
    flow_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    step TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('entered', 'completed', 'clicked')),
    detail TEXT,
    at TEXT NOT NULL
);
CREATE INDEX flow_step_events_flow ON flow_step_events (flow_id, at);

-- The database is the source of truth for time; huey only wakes us up on time.
CREATE TABLE flow_timers (
    token TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES flow_runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    due_at TEXT NOT NULL,
    fired_at TEXT
) WITHOUT ROWID;
CREATE INDEX flow_timers_due ON flow_timers (due_at) WHERE fired_at IS NULL;

CREATE TABLE comment_private_replies (
    channel_id INTEGER NOT NULL,
    comment_id TEXT NOT NULL,
    run_id INTEGER,
    at TEXT NOT NULL,
    PRIMARY KEY (channel_id, comment_id)
) WITHOUT ROWID;

-- "Notify team" actions and other things agents should see.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER REFERENCES conversations(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    read_at TEXT
);

-- Builder preview sessions: a pretend contact talking to a draft; never touches a channel.
CREATE TABLE flow_previews (
    flow_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (flow_id, owner)
) WITHOUT ROWID;

ALTER TABLE contacts ADD COLUMN timezone TEXT;
