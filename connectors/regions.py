"""Geo-replication health: how far each mirrored topic trails its source, and do regions agree.

Lag in records compares, per partition, the end offset of jarvis.ops in the source region with the
end offset of <source>.jarvis.ops in the target region (MirrorMaker 2 keeps partition numbers).
MirrorMaker may re-send after a crash, so a mirror can run ahead; that counts as zero lag. A region
that joined from a backup (connectors/region_join.py) has its mirrors begin at the backup's
positions, not at 0: its jarvis.regions.joins records say where, and the mirror's end counts from
there. Lag in
seconds is the age of the oldest source record not yet mirrored (MirrorMaker preserves record
timestamps). Agreement compares the per-partition state digests served by each region's query API.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from connectors import api_client
from connectors.kafka_clients import ADMIN, confluent_conf
from connectors.kafka_io import records_to_end
from jarvis import topics
from jarvis.config import Settings
from jarvis.regions_join import JOINS_TOPIC, parse_join_record


@dataclass
class MirrorLag:
    source: str
    target: str
    records: int
    seconds: float


def _consumer(settings: Settings, region: str, principal: str) -> Consumer:
    return Consumer(
        {
            **confluent_conf(settings, principal, region),
            "group.id": f"regions-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )


def _ends(c: Consumer, topic: str) -> dict[int, int]:
    md = c.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error is not None:
        return {}
    return {
        p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in md.topics[topic].partitions
    }


def join_starts(c: Consumer, timeout: float = 10.0) -> dict[str, dict[int, int]]:
    """Where each flow into the consumer's region began (source -> partition -> source offset), from
    its jarvis.regions.joins records; empty for a region that did not join from a backup."""
    high = _ends(c, JOINS_TOPIC).get(0, 0)
    if high <= 0:
        return {}
    out: dict[str, dict[int, int]] = {}
    try:
        for m in records_to_end(c, JOINS_TOPIC, {0: high}, {0}, timeout):
            src, starts = parse_join_record(m.value() or b"{}")
            out[src] = starts
    finally:
        c.unassign()
    return out


def _timestamp_at(c: Consumer, topic: str, partition: int, offset: int) -> float | None:
    c.assign([TopicPartition(topic, partition, offset)])
    msg = c.poll(5)
    if msg is None or msg.error():
        return None
    return msg.timestamp()[1] / 1000


def mirror_lag(settings: Settings, principal: str = ADMIN) -> list[MirrorLag]:
    out = []
    consumers = {r.name: _consumer(settings, r.name, principal) for r in settings.regions}
    try:
        src_ends = {r: _ends(c, topics.OPS) for r, c in consumers.items()}
        joined = {r: join_starts(c) for r, c in consumers.items()}
        for src in settings.region_names:
            for dst in settings.region_names:
                if src == dst:
                    continue
                base = joined[dst].get(src, {})
                mirrored = {p: e + base.get(p, 0) for p, e in _ends(consumers[dst], topics.mirrored(src)).items()}
                records = 0
                oldest: float | None = None
                for p, end in src_ends[src].items():
                    behind = max(0, end - mirrored.get(p, 0))
                    records += behind
                    if behind:
                        ts = _timestamp_at(consumers[src], topics.OPS, p, end - behind)
                        if ts is not None:
                            oldest = ts if oldest is None else min(oldest, ts)
                seconds = max(0.0, time.time() - oldest) if oldest is not None else 0.0
                out.append(MirrorLag(src, dst, records, seconds))
    finally:
        for c in consumers.values():
            c.close()
    return out


def digests(settings: Settings, timeout: float = 10.0, authorization: str | None = None) -> dict[str, Any]:
    """Every region's digest, asked with `authorization` (an Authorization header's value; default
    the key of connectors/api_client.py), which needs read on '*'."""
    result: dict[str, Any] = {}
    headers = {"Authorization": authorization} if authorization else api_client.auth_headers(settings)
    for r in settings.regions:
        try:
            req = urllib.request.Request(f"{r.query_url}/v1/digest", headers=headers)
            with api_client.urlopen(req, timeout, settings=settings) as resp:
                result[r.name] = json.loads(resp.read())
        except OSError as e:
            result[r.name] = {"error": str(e)}
    return result


def agreement(d: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether every region holds the same state, and the partitions where they differ."""
    parts = [v.get("partitions") for v in d.values()]
    if any(p is None for p in parts):
        return False, ["a region's query API did not answer"]
    keys = set().union(*parts)
    differing = sorted(k for k in keys if len({p.get(k) for p in parts}) > 1)
    return not differing, differing
