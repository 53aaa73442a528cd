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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from connectors import api_client
from connectors.kafka_clients import ADMIN, confluent_conf
from connectors.kafka_io import records_to_end
from jarvis import topics
from jarvis.config import Settings
from jarvis.regions_join import JOINS_TOPIC, parse_join_record

KAFKA_TIMEOUT_S = 10.0


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


def _admin(settings: Settings, region: str, principal: str) -> AdminClient:
    return AdminClient(confluent_conf(settings, principal, region))


def end_offsets(
    admin: AdminClient, names: Iterable[str], timeout: float = KAFKA_TIMEOUT_S
) -> dict[str, dict[int, int]]:
    """The end offset of every partition of the topics `names` that exist on `admin`'s cluster (topic
    -> partition -> end), in one metadata request and one ListOffsets call for all of them: asking
    partition by partition cost a round trip each, 150 of them at five regions."""
    md = admin.list_topics(timeout=timeout)
    wanted = {
        TopicPartition(t, p): OffsetSpec.latest()
        for t in names
        if t in md.topics and md.topics[t].error is None
        for p in md.topics[t].partitions
    }
    out: dict[str, dict[int, int]] = {}
    if not wanted:
        return out
    # read_committed: the end a consumer sees, as Consumer.get_watermark_offsets (librdkafka's
    # default isolation level) answered before.
    futures = admin.list_offsets(
        wanted, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
    )
    for tp, f in futures.items():
        out.setdefault(tp.topic, {})[tp.partition] = f.result().offset
    return out


def records_behind(
    source_ends: Mapping[int, int], mirror_ends: Mapping[int, int], base: Mapping[int, int]
) -> dict[int, int]:
    """Per source partition, how many of its records the mirror does not hold yet (only partitions
    that trail). A mirror that began at a join's `base` offsets counts from there; one that ran ahead
    (MirrorMaker re-sending after a crash) trails by nothing."""
    out = {}
    for p, end in source_ends.items():
        mirrored = mirror_ends.get(p, 0) + base.get(p, 0) if p in mirror_ends else 0
        if end > mirrored:
            out[p] = end - mirrored
    return out


def join_starts(c: Consumer, high: int, timeout: float = KAFKA_TIMEOUT_S) -> dict[str, dict[int, int]]:
    """Where each flow into the consumer's region began (source -> partition -> source offset), from
    its jarvis.regions.joins records (`high`: that topic's end); empty for a region that did not join
    from a backup."""
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
    names = settings.region_names
    # A consumer per region only where records must be read (a join's records, the oldest record
    # not yet mirrored): in steady state the end offsets alone answer.
    consumers: dict[str, Consumer] = {}

    def consumer(region: str) -> Consumer:
        if region not in consumers:
            consumers[region] = _consumer(settings, region, principal)
        return consumers[region]

    try:
        # Every client made before the first is asked: their connections are set up side by side.
        admins = {r: _admin(settings, r, principal) for r in names}
        wanted = [topics.OPS, JOINS_TOPIC, *map(topics.mirrored, names)]
        ends = {r: end_offsets(a, wanted) for r, a in admins.items()}
        joins = {r: e.get(JOINS_TOPIC, {}).get(0, 0) for r, e in ends.items()}
        joined = {r: join_starts(consumer(r), high) if high > 0 else {} for r, high in joins.items()}
        for src in names:
            for dst in names:
                if src == dst:
                    continue
                source_ends = ends[src].get(topics.OPS, {})
                behind = records_behind(
                    source_ends, ends[dst].get(topics.mirrored(src), {}), joined[dst].get(src, {})
                )
                oldest: float | None = None
                for p, n in behind.items():
                    ts = _timestamp_at(consumer(src), topics.OPS, p, source_ends[p] - n)
                    if ts is not None:
                        oldest = ts if oldest is None else min(oldest, ts)
                seconds = max(0.0, time.time() - oldest) if oldest is not None else 0.0
                out.append(MirrorLag(src, dst, sum(behind.values()), seconds))
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
