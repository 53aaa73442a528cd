"""Bulk writes of verified operations into the archive, deduplicated by content SHA-256.

One transaction per Kafka poll batch: COPY the rows into a temporary staging table, then
INSERT ... SELECT ... ON CONFLICT DO NOTHING into the real tables (a unique key, not a lookup per
row). The caller commits Kafka offsets only after this returns, so a crash at any moment redelivers
rows that the unique key then absorbs: nothing lost, nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from connectors.archive.migrate import ensure_partitions, has_timescale
from jarvis.ops import Operation

OPS_COLUMNS = (
    "ts", "hlc", "op_id", "object_id", "crdt_type", "kind", "origin_region", "node_id", "payload",
    "encrypted_fields", "signature", "batch_id", "op_index", "dot_partition", "dot_offset", "dot_index",
    "content_sha256", "op_region", "metadata",
)  # fmt: skip


def hlc_time(hlc: int) -> dt.datetime:
    return dt.datetime.fromtimestamp((hlc >> 16) / 1000, tz=dt.UTC)


@dataclass(slots=True)
class ArchiveRow:
    op: Operation
    batch_id: str
    op_index: int
    origin_region: str
    partition: int
    offset: int
    index: int
    signature: bytes
    digest: bytes  # SHA-256 of the op's content: the verifier checked it against the signed batch

    def values(self) -> tuple[Any, ...]:
        """The row for COPY, without ts (PostgreSQL derives it from hlc: cheaper than a datetime per row)."""
        op = self.op
        return (
            op.hlc, op.op_id, op.object_id, op.crdt_type, op.kind, self.origin_region,
            op.node_id, orjson.dumps(op.args).decode(), _text_array(op.encrypted_fields), self.signature,
            self.batch_id, self.op_index, self.partition, self.offset, self.index, self.digest,
            op.region, orjson.dumps(op.metadata).decode(),
        )  # fmt: skip


STAGE_COLUMNS = OPS_COLUMNS[1:]  # all but ts
TS_FROM_HLC = "to_timestamp((hlc >> 16) / 1000.0)"


def _text_array(items: list[str]) -> str:
    # COPY's text form of text[]: formatting it here skips psycopg's per-row list dumper.
    if not items:
        return "{}"
    return "{" + ",".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "}"


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

    def write(self, rows: Iterable[ArchiveRow], batches: Iterable[tuple[str, str, str, bytes, bytes]]) -> int:
        """Archive rows (and their signing batches) durably. Returns how many rows were new."""
        rows = list(rows)
        if not rows:
            return 0
        conn = self.conn
        with conn.transaction():
            if not self.timescale:
                hlcs = [r.op.hlc for r in rows]
                ensure_partitions(conn, "ops", _months(min(hlcs), max(hlcs)), self._known_partitions)
                tele = [r for r in rows if r.op.kind == "append"]
                if tele:
                    tmonths = {
                        _point_time(r.op).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
                        for r in tele
                    }
                    ensure_partitions(conn, "telemetry", tmonths, self._known_partitions)
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO jarvis.batches (batch_id, node_id, key_id, signature, op_digests) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bytea[], %s::bytea[]) "
                    "ON CONFLICT DO NOTHING",
                    [list(col) for col in zip(*batches, strict=True)] if batches else [[], [], [], [], []],
                )
                if not self._staged:
                    cur.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS ops_stage (LIKE jarvis.ops INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS"
                    )
                    cur.execute("ALTER TABLE ops_stage ALTER COLUMN ts DROP NOT NULL")
                    self._staged = True
                with cur.copy(f"COPY ops_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(r.values())
                cur.execute(
                    f"INSERT INTO jarvis.ops ({', '.join(OPS_COLUMNS)}) "
                    f"SELECT {TS_FROM_HLC}, {', '.join(STAGE_COLUMNS)} FROM ops_stage ON CONFLICT DO NOTHING"
                )
                inserted = cur.rowcount
                cur.execute(
                    "INSERT INTO jarvis.telemetry (ts, object_id, value, metadata, content_sha256) "
                    "SELECT to_timestamp((payload->>'timestamp')::double precision), object_id, "
                    "(payload->>'value')::double precision, payload->'metadata', content_sha256 "
                    "FROM ops_stage WHERE kind = 'append' AND jsonb_typeof(payload->'value') = 'number' "
                    "ON CONFLICT DO NOTHING"
                )
        return inserted

    def close(self) -> None:
        self.conn.close()


def _point_time(op: Operation) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(float(op.args["timestamp"]), tz=dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return hlc_time(op.hlc)
