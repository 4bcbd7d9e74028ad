-- Notices to every active account (policy changes): one row per notice id, and who got it.
CREATE TABLE notices (
    id TEXT PRIMARY KEY,            -- chosen by the admin: sending the same id again sends nothing twice
    kind TEXT NOT NULL,             -- policy_change
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE notice_deliveries (
    notice_id TEXT NOT NULL REFERENCES notices(id),
    account_id TEXT NOT NULL REFERENCES accounts(id),
    sent_at TEXT NOT NULL,          -- handed to the email backend
    PRIMARY KEY (notice_id, account_id)
) WITHOUT ROWID;
