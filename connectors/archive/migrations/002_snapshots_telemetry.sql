-- Periodic snapshots of materialized state, so an audit starts from the nearest one before T.
CREATE TABLE IF NOT EXISTS jarvis.snapshots (
    object_id   text NOT NULL,
    region      text NOT NULL,
    taken_at    timestamptz NOT NULL,
    hlc         bigint NOT NULL,          -- newest operation folded into this snapshot
    crdt_type   text NOT NULL,
    value       jsonb NOT NULL,           -- the CRDT state (to_dict)
    context     jsonb NOT NULL,           -- causal context: origin -> [offset, index]
    ops         bigint NOT NULL,
    PRIMARY KEY (object_id, region, taken_at)
);

-- Telemetry points (time-series appends) in their own table for range queries and rollups.
CREATE TABLE IF NOT EXISTS jarvis.telemetry (
    ts          timestamptz NOT NULL,
    object_id   text NOT NULL,
    value       double precision NOT NULL,
    metadata    jsonb,
    content_sha256 bytea NOT NULL,
    PRIMARY KEY (content_sha256, ts)
) {partitioning};
CREATE INDEX IF NOT EXISTS telemetry_object_ts ON jarvis.telemetry (object_id, ts);
