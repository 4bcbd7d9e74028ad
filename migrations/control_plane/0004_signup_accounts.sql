-- A checkout started by a signed-in account: the tenant it creates belongs to that account.
ALTER TABLE signups ADD COLUMN account_id TEXT REFERENCES accounts(id);
CREATE INDEX signups_account ON signups (account_id) WHERE account_id IS NOT NULL;
