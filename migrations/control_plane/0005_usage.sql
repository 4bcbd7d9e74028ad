-- What each tenant's appliance reported using, per UTC month (the latest report of the month).
CREATE TABLE tenant_usage (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    month TEXT NOT NULL,            -- YYYY-MM
    contacts INTEGER NOT NULL,
    ai_replies INTEGER NOT NULL,
    seats INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    plan TEXT,
    over_limit TEXT NOT NULL DEFAULT '[]',  -- JSON list of the limits exceeded
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month)
) WITHOUT ROWID;
