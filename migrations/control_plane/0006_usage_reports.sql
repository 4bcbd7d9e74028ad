-- Signed usage reports from tenants' appliances (POST /usage/reports): every one accepted.
CREATE TABLE usage_reports (
    report_id TEXT PRIMARY KEY,     -- the appliance's random id: the same id again is a replay
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    period TEXT NOT NULL,           -- YYYY-MM (UTC)
    issued_at TEXT NOT NULL,        -- must grow per tenant
    received_at TEXT NOT NULL,
    contacts INTEGER NOT NULL,
    automated_contacts INTEGER NOT NULL,
    ai_replies INTEGER NOT NULL,
    seats INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    messages INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX usage_reports_tenant ON usage_reports (tenant_id, period, issued_at);

-- Overage told to Stripe as meter events, one row per event sent. The highest `total` of a
-- (tenant, period, metric) is the overage Stripe has been told about so far.
CREATE TABLE meter_events (
    identifier TEXT PRIMARY KEY,    -- Stripe's meter event identifier (and Idempotency-Key)
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    period TEXT NOT NULL,
    metric TEXT NOT NULL,
    event_name TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    value INTEGER NOT NULL,         -- what this event adds
    total INTEGER NOT NULL,         -- the period's overage once it is added
    sent_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX meter_events_period ON meter_events (tenant_id, period, metric, total);
