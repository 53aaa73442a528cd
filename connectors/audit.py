"""`jarvis audit`: the archived operations of a time window, grouped, with the rejected ones beside.

Accepted operations come from the archive (one GROUP BY); rejected ones from the region's
`jarvis.ops.rejected` topic, read between offsets_for_times(since) and offsets_for_times(until).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.kafka_clients import ADMIN, confluent_conf
from jarvis import topics
from jarvis.codec import CodecError, decode_rejected
from jarvis.config import Settings


def audit_window(
    settings: Settings, region: str, since: dt.datetime, until: dt.datetime, prefix: str | None
) -> dict[str, Any]:
    like = f"{prefix}:%" if prefix else "%"
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(
            # Operations that came through the ingest gateway name their sender: "device-17 via ingest-eu-0".
            "SELECT coalesce((metadata->>'principal') || ' via ' || node_id, node_id), "
            "split_part(object_id, ':', 1), count(*), count(DISTINCT object_id), "
            "min(ts), max(ts) FROM jarvis.ops WHERE ts >= %s AND ts < %s AND object_id LIKE %s "
            "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
            (since, until, like),
        ).fetchall()
    groups = [
        {"node_id": n, "prefix": p, "ops": c, "objects": o, "first": f.isoformat(), "last": la.isoformat()}
        for n, p, c, o, f, la in rows
    ]
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total": sum(g["ops"] for g in groups),
        "by_node_prefix": groups,
        "rejected": rejected_between(settings, region, since, until, prefix),
    }


def rejected_between(
    settings: Settings, region: str, since: dt.datetime, until: dt.datetime, prefix: str | None
) -> list[dict[str, Any]]:
    c = Consumer(
        {
            **confluent_conf(settings, ADMIN, region),
            "group.id": f"jarvis-audit-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    out: list[dict[str, Any]] = []
    try:
        meta = c.list_topics(topics.REJECTED, timeout=10).topics[topics.REJECTED]
        t0, t1 = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
        starts, ends = [], {}
        for p in meta.partitions:
            _, high = c.get_watermark_offsets(TopicPartition(topics.REJECTED, p), timeout=10)
            lo = c.offsets_for_times([TopicPartition(topics.REJECTED, p, t0)], timeout=10)[0].offset
            hi = c.offsets_for_times([TopicPartition(topics.REJECTED, p, t1)], timeout=10)[0].offset
            lo = high if lo < 0 else lo
            hi = high if hi < 0 else hi
            if hi > lo:
                starts.append(TopicPartition(topics.REJECTED, p, lo))
                ends[p] = hi
        if not starts:
            return out
        c.assign(starts)
        remaining = set(ends)
        while remaining:
            msgs = c.consume(num_messages=1000, timeout=1.0)
            if not msgs:
                break
            for m in msgs:
                p = m.partition()
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        remaining.discard(p)
                    continue
                if p not in remaining or m.offset() >= ends[p]:
                    remaining.discard(p)
                    continue
                try:
                    r = decode_rejected(m.value() or b"")
                except CodecError:
                    continue
                if prefix and not (r.object_id or "").startswith(f"{prefix}:"):
                    continue
                out.append(
                    {
                        "rejected_at": dt.datetime.fromtimestamp(
                            r.rejected_at_ms / 1000, tz=dt.UTC
                        ).isoformat(),
                        "object_id": r.object_id,
                        "op_id": r.op_id,
                        "reasons": r.reasons,
                        "source": f"{r.topic}:{r.partition}@{r.offset}",
                    }
                )
    finally:
        c.close()
    out.sort(key=lambda r: r["rejected_at"])
    return out
