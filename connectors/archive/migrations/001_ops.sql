-- The archive of every verified operation, deduplicated by the SHA-256 of its content.
-- {partitioning} is filled by the migrator: native monthly range partitions, or a TimescaleDB
-- hypertable where the extension exists. Unique keys include ts because a partitioned table's
-- unique constraints must contain the partition key; an operation's ts is a pure function of its
-- content (its HLC), so (content_sha256, ts) is as unique as content_sha256.
CREATE SCHEMA IF NOT EXISTS jarvis;

CREATE TABLE IF NOT EXISTS jarvis.batches (
    batch_id      text PRIMARY KEY,
    node_id       text NOT NULL,
    key_id        text NOT NULL,
    signature     bytea NOT NULL,          -- Ed25519 over SHA-256(op_digests)
    op_digests    bytea NOT NULL,          -- 32 bytes per operation of the signed batch
    archived_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS jarvis.ops (
    ts             timestamptz NOT NULL,   -- from the operation's hybrid logical clock
    hlc            bigint NOT NULL,
    op_id          text NOT NULL,
    object_id      text NOT NULL,
    crdt_type      text NOT NULL,
    kind           text NOT NULL,
    origin_region  text NOT NULL,
    node_id        text NOT NULL,
    payload        jsonb NOT NULL,         -- the op's args; encrypted fields stay encrypted
    encrypted_fields text[] NOT NULL DEFAULT '{}',
    signature      bytea NOT NULL,         -- the signing batch's signature (see jarvis.batches)
    batch_id       text NOT NULL,
    op_index       int NOT NULL,           -- position in the signed batch
    dot_partition  int NOT NULL,
    dot_offset     bigint NOT NULL,
    dot_index      int NOT NULL,
    content_sha256 bytea NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (content_sha256, ts)
) {partitioning};

CREATE INDEX IF NOT EXISTS ops_object_ts ON jarvis.ops (object_id, ts);
CREATE INDEX IF NOT EXISTS ops_ts ON jarvis.ops (ts);
