-- Customer accounts (sign-in with Google), their sessions, and sign-ins in progress.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL CHECK (provider IN ('google', 'meta')),
    subject TEXT NOT NULL,          -- the provider's stable user id (`sub`)
    email TEXT,
    name TEXT,
    age_confirmed_at TEXT NOT NULL, -- the person confirmed being 16 or older at sign-up
    created_at TEXT NOT NULL,
    last_sign_in_at TEXT NOT NULL,
    UNIQUE (provider, subject)
) WITHOUT ROWID;

-- `aat-session` cookies: only the SHA-256 of the token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- An authorization request sent to the provider and not yet answered (10 minutes, one use).
CREATE TABLE sign_ins (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    age_confirmed INTEGER NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
