"""Bulk writes of verified operations into the archive, deduplicated by content SHA-256.

One transaction per chunk of polled messages (streams/archiver.py). Every operation reaches the
archive at least twice (each region's archiver writes the same PostgreSQL, and MirrorMaker or a
redelivery may repeat a message), so a write sorts its messages by whether their signed batch is new
to the archive, which the insert into jarvis.batches says for free:

- a batch new to the archive (the usual case for the first archiver to see it) is COPYed straight
  into jarvis.ops, as cheap as a plain COPY, inside a savepoint: an operation already archived by
  another way (the same operation signed again in another batch) fails it with a unique violation,
  and those rows then take the path below;
- everything else is COPYed into a temporary staging table and moved by INSERT ... SELECT ...
  ON CONFLICT DO NOTHING, so whatever the archive already holds is skipped by its unique key.

The batch row and its operations commit together, and the caller commits Kafka offsets only after
this returns, so a crash at any moment redelivers rows the unique keys then absorb: nothing lost,
nothing twice. Each batch's row is locked by the transaction that inserts it, and batches are
inserted in batch_id order, so the two archivers queue behind each other instead of deadlocking.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import psycopg

from connectors.archive.migrate import ensure_partitions, has_timescale
from connectors.archive.rows import COPY_COLUMNS, MessageRows, hlc_time

OPS_COLUMNS = (
    "ts", "hlc", "op_id", "object_id", "crdt_type", "kind", "origin_region", "node_id", "payload",
    "encrypted_fields", "signature", "batch_id", "op_index", "dot_partition", "dot_offset", "dot_index",
    "content_sha256", "op_region", "metadata",
)  # fmt: skip
_COPY = ", ".join(COPY_COLUMNS)
_STAGES = ("ops_stage", "telemetry_stage")


def _months(lo_hlc: int, hi_hlc: int) -> set[dt.datetime]:
    lo = hlc_time(lo_hlc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    hi = hlc_time(hi_hlc)
    out = set()
    while lo <= hi:
        out.add(lo)
        lo = (lo + dt.timedelta(days=32)).replace(day=1)
    return out


class ArchiveSink:
    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn)
        self.timescale = has_timescale(self.conn)
        self._known_partitions: set[str] = set()
        self._staged = False
        self.conn.commit()

    def write(self, messages: Sequence[MessageRows]) -> int:
        """Archive the operations of these jarvis.ops messages (and their signed batches) durably.

        Returns how many operations were new to the archive."""
        if not any(m.count for m in messages):
            return 0
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            if not self.timescale:
                self._partitions(conn, messages)
            if not self._staged:
                for stage in _STAGES:
                    cur.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE jarvis.ops INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS"
                    )
                self._staged = True
            new = self._insert_batches(cur, messages)
            fresh: list[MessageRows] = []
            known: list[MessageRows] = []
            for m in messages:
                if m.batch_id in new:
                    fresh.append(m)
                    new.discard(m.batch_id)  # a batch's second message in this poll is a duplicate
                else:
                    known.append(m)
            inserted = 0
            if fresh:
                try:
                    with conn.transaction():
                        _copy(cur, "jarvis.ops", (m.text for m in fresh))
                    inserted = sum(m.count for m in fresh)
                except psycopg.errors.UniqueViolation:
                    known += fresh
            if known:
                _copy(cur, "ops_stage", (m.text for m in known))
                cur.execute(
                    f"INSERT INTO jarvis.ops ({_COPY}) SELECT {_COPY} FROM ops_stage ON CONFLICT DO NOTHING"
                )
                inserted += cur.rowcount
            appends = [m.appends for m in messages if m.appends]
            if appends:
                _copy(cur, "telemetry_stage", appends)
                cur.execute(
                    "INSERT INTO jarvis.telemetry (ts, object_id, value, metadata, content_sha256) "
                    "SELECT to_timestamp((payload->>'timestamp')::double precision), object_id, "
                    "(payload->>'value')::double precision, payload->'metadata', content_sha256 "
                    "FROM telemetry_stage WHERE jsonb_typeof(payload->'value') = 'number' "
                    "ON CONFLICT DO NOTHING"
                )
        return inserted

    def _partitions(self, conn: psycopg.Connection, messages: Sequence[MessageRows]) -> None:
        with_rows = [m for m in messages if m.count]
        lo, hi = min(m.min_hlc for m in with_rows), max(m.max_hlc for m in with_rows)
        ensure_partitions(conn, "ops", _months(lo, hi), self._known_partitions)
        points = set().union(*(m.point_months for m in with_rows))
        if points:
            ensure_partitions(conn, "telemetry", points, self._known_partitions)

    @staticmethod
    def _insert_batches(cur: psycopg.Cursor, messages: Sequence[MessageRows]) -> set[str]:
        """Insert the signed batches the archive lacks; returns their ids (those this transaction holds)."""
        batches = list({m.batch_id: m.batch for m in reversed(messages)}.values())  # first of each id
        # %b: the digests (32 bytes per operation) travel as binary; as text psycopg hex-escapes them
        # in Python, which cost as much as the COPY's own Python side.
        cur.execute(
            "INSERT INTO jarvis.batches (batch_id, node_id, key_id, signature, op_digests) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %b::bytea[], %b::bytea[]) ORDER BY 1 "
            "ON CONFLICT DO NOTHING RETURNING batch_id",
            [list(col) for col in zip(*batches, strict=True)],
        )
        return {batch_id for (batch_id,) in cur.fetchall()}

    def close(self) -> None:
        self.conn.close()


def _copy(cur: psycopg.Cursor, table: str, texts: Iterable[str]) -> None:
    with cur.copy(f"COPY {table} ({_COPY}) FROM STDIN") as copy:
        for text in texts:
            copy.write(text)
