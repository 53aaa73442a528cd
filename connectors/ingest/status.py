"""Where an operation the gateway wrote is now: `GET /v1/ops/{op_id}`.

The op id names its ingress partition and the write's wall time (connectors/ingest/op_ids.py), so
one partition is read from a little before that time until the record holding the operation; the
verifier's verdict on that record (jarvis.ops or jarvis.ops.rejected) is then read as the SDK reads
its verdicts (connectors/verdicts.py). Works from any gateway instance, before or after restarts.

Where an accepted operation is folded: in each region, the fold's state changelog holds, beside the
object's state, its causal context (the last dot folded per origin region and partition), so the
first changelog record of the object whose context covers the operation's dot says it is folded
there, durably (a restarted fold recovers from that changelog). This is what `jarvis trace` reads
(connectors/trace.py). It needs no MirrorMaker offset translation: a dot names the origin's ingress
position, the same in every region, whereas the fold's committed offsets on `<origin>.jarvis.ops`
count MirrorMaker's own offsets and would first need the mirrored copy of the verified record found.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connectors.kafka_clients import client_conf
from connectors.trace import Tracer
from connectors.verdicts import SentBatch, VerdictTimeout, await_verdicts
from jarvis import topics
from jarvis.codec import CodecError
from jarvis.codec.records import decode_batch_record
from jarvis.config import Settings
from jarvis.crdt.bcounter_spec import JUDGED
from jarvis.ops import Dot

SLACK_MS = 5_000  # the broker's clock may lag the gateway's a little
SCAN_LIMIT = 20_000  # records read at most, so a lookup stays cheap
VERDICT_WAIT_S = 1.5


class OpStatus:
    def __init__(self, bootstrap: str, region: str, settings: Settings | None = None) -> None:
        self.bootstrap = bootstrap
        self.settings = settings
        self.region = region

    def find(self, op_id: str, partition: int, ms: int) -> dict[str, Any] | None:
        hit = self._on_ingress(op_id, partition, ms)
        if hit is None:
            return None
        offset, index, sent_ms, rec = hit
        meta = (rec.get("metadata") or [{}] * len(rec["op_ids"]))[index] or {}
        out: dict[str, Any] = {
            "op_id": op_id,
            "object_id": rec["object_ids"][index],
            "kind": rec["kinds"][index],
            "region": self.region,
            "ingress": {"partition": partition, "offset": offset, "index": index},
            "principal": meta.get("principal"),
            "via": meta.get("via"),
        }
        # A bounded counter's decrement or transfer is decided by the region's fold: its verdict.
        judged = rec["crdt_types"][index] == "bcounter" and rec["kinds"][index] in JUDGED
        batch = SentBatch(
            partition, list(rec["op_ids"]), list(rec["object_ids"]), offset, sent_ms,
            frozenset([index] if judged else []),
        )  # fmt: skip
        try:
            verdict = await_verdicts(
                self.bootstrap, self.region, [batch], VERDICT_WAIT_S, principal="ingest", settings=self.settings
            )[op_id]
        except VerdictTimeout:
            out["state"] = "on_ingress"  # not verified yet
            out["folded_in"], out["pending_in"] = [], self._regions()
            return out
        if verdict.ok:
            out["state"] = "accepted"
            out["dot"] = list(verdict.dot or ())
            out["folded_in"], out["pending_in"] = self._folded(out["object_id"], Dot(self.region, partition, offset, index), sent_ms)
        else:
            out["state"] = "rejected"
            out["reasons"] = verdict.reasons
        return out

    def _regions(self) -> list[str]:
        return list(self.settings.region_names) if self.settings is not None else [self.region]

    def _folded(self, object_id: str, dot: Dot, since_ms: int) -> tuple[list[str], list[str]]:
        """(regions whose fold holds `dot` in its changelog, regions whose fold does not yet)."""
        regions = self._regions()
        if self.settings is None:
            return [], regions
        tracer = Tracer(self.settings, principal="ingest")

        def look(region: str) -> bool:
            try:
                return tracer.folded(region, object_id, dot, since_ms) is not None
            except KafkaException:  # that region's Kafka unreachable: not known to be folded there
                return False

        with ThreadPoolExecutor(len(regions), thread_name_prefix="opstatus-folded") as pool:
            found = dict(zip(regions, pool.map(look, regions), strict=True))
        return [r for r in regions if found[r]], [r for r in regions if not found[r]]

    def _on_ingress(self, op_id: str, partition: int, ms: int) -> tuple[int, int, int, dict[str, Any]] | None:
        c = Consumer(
            {
                **client_conf(self.bootstrap, "ingest", self.settings),
                "group.id": f"jarvis-opstatus-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            tp = TopicPartition(topics.INGRESS, partition)
            _, high = c.get_watermark_offsets(tp, timeout=5)
            start = c.offsets_for_times([TopicPartition(topics.INGRESS, partition, ms - SLACK_MS)], timeout=5)[0].offset
            if start < 0 or start >= high:
                return None
            c.assign([TopicPartition(topics.INGRESS, partition, start)])
            read = 0
            while read < SCAN_LIMIT:
                msgs = c.consume(500, 1.0)
                if not msgs:
                    return None
                for m in msgs:
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            return None
                        continue
                    read += 1
                    try:
                        rec = decode_batch_record(m.value() or b"")
                    except CodecError:
                        continue
                    ids = rec.get("op_ids") or []
                    if op_id in ids:
                        return m.offset(), ids.index(op_id), m.timestamp()[1], rec
                    if m.offset() + 1 >= high:
                        return None
            return None
        finally:
            c.close()
