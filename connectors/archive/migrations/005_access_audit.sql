-- The access audit (issue 19): denied HTTP requests and admin changes, copied from each region's
-- jarvis.audit topic by its archiver; (region, partition, offset) makes a redelivery a no-op.
CREATE TABLE IF NOT EXISTS jarvis.access_audit (
    region text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    service text NOT NULL DEFAULT '',
    principal text,
    key_id text,
    method text,
    path text,
    status int,
    reason text,
    action text,
    target text,
    event jsonb NOT NULL,
    PRIMARY KEY (region, partition, "offset")
);
CREATE INDEX IF NOT EXISTS access_audit_at ON jarvis.access_audit (at);
