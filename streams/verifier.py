"""Verifier worker: consumer group on jarvis.ops.ingress, gate to jarvis.ops or jarvis.ops.rejected.

Accepted operations leave as one VerifiedBatch per ingress message, on the same partition number
(partition = murmur2(object id) everywhere): the message itself, untouched, with the indexes of the
accepted operations; operation i's dot is (region, ingress partition, ingress offset, i).
Reprocessing an ingress record after a crash yields the same dots, so the fold recognises the
duplicate. A re-sent batch (the same signed operations in a new ingress record, here, in another
partition or in another region) is rejected: every accepted batch is noted in jarvis.ops.seen, which
every verifier of every region reads (connectors/seen_feed.py) before it judges a message. Every
rejected operation is written with all its reasons; nothing is dropped silently.

Trust: the verifier reads every admin-signed grant and revocation (jarvis.trust and its mirrors,
connectors/trust_feed.py) before it judges a message, and keeps following them; a message whose key
is not trusted is judged again once the trust topics are read to their end (a grant written just
before the batch is then seen), and rejected with the reason if the key is still not trusted.

With JARVIS_SCHEMA_REGISTRY_URL set, ingress messages may also come in the Confluent wire format:
they are forwarded as single-object messages (same Avro body, header swapped), because schema ids
mean nothing to the other regions' readers. While the registry does not answer, the partition waits
rather than rejecting messages that are fine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import faust
from prometheus_client import Counter

from connectors.otel import Spans
from connectors.schema_registry import RegistryCodec
from connectors.seen_feed import SeenFeed
from connectors.trust_feed import TrustFeed, new_view
from jarvis import topics, tracecontext
from jarvis.codec import encode_verified
from jarvis.codec.registry import RegistryUnavailable
from jarvis.codec.seen import SeenRecord, encode_seen
from jarvis.config import Settings
from jarvis.gate import Gate, GateResult
from jarvis.security.seen_batches import Acceptance, SeenBatches
from jarvis.tracecontext import TraceParent
from pipelines.loader import pipelines
from streams.app import make_app
from streams.metrics import install_metrics_page
from streams.rejected import rejected_message

OPS_ACCEPTED = Counter("jarvis_verifier_accepted_total", "Operations accepted by the verifier", ["region"])
OPS_REJECTED = Counter(
    "jarvis_verifier_rejected_total", "Operations rejected by the verifier", ["region", "reason"]
)
log = logging.getLogger(__name__)


def reason_label(reason: str) -> str:
    """A low-cardinality metric label: the reason's words before any detail."""
    return reason.split(":")[0].split("(")[0].strip()[:48]


@dataclass(frozen=True, slots=True)
class Out:
    """One record the verifier writes."""

    topic: str
    key: bytes
    value: bytes
    partition: int | None = None  # None: by key (jarvis.ops.rejected)
    headers: tuple[tuple[str, bytes], ...] = ()


def outputs(
    result: GateResult, region: str, topic: str, partition: int, offset: int, key: bytes, original: bytes,
    trace: TraceParent | None = None,
) -> list[Out]:  # fmt: skip
    """What the verifier writes for one judged ingress message, in order.

    An accepted batch's note goes to jarvis.ops.seen before the batch goes to jarvis.ops: after a
    crash between the two, the note names this very position, which the re-run reproduces and the
    gate does not count as a duplicate. Then every rejected operation, with all its reasons. The
    verified and rejected records carry `trace` (the verifier's span of the message's trace)."""
    traced = (trace.kafka_header(),) if trace is not None else ()
    out: list[Out] = []
    if result.accepted:
        if result.seen_key is not None and result.batch is not None:
            note = SeenRecord(
                result.seen_key,
                result.batch.batch_id,
                Acceptance(region, partition, offset),
                result.seen_expires_ms,
            )
            out.append(Out(topics.SEEN, result.seen_key, encode_seen(note), partition))
        verified = encode_verified(
            region, partition, offset, result.accepted, result.confidences, result.message
        )
        out.append(Out(topics.OPS, key, verified, partition, traced))
    for rej in result.rejected:
        rkey, value = rejected_message(
            original=original, reasons=rej.reasons, topic=topic, partition=partition, offset=offset,
            index=rej.index, op=rej.op, region=region,
        )  # fmt: skip
        out.append(Out(topics.REJECTED, rkey, value, None, traced))
    return out


class Judge:
    """The gate, fed with every region's accepted batches before each message it judges."""

    def __init__(self, region: str, gate: Gate, feed: SeenFeed, trust: TrustFeed | None = None) -> None:
        self.region = region
        self.gate = gate
        self.feed = feed
        self.trust = trust

    async def judge(self, data: bytes, partition: int, offset: int, produced_ms: int | None = None) -> GateResult:
        if not self.feed.caught_up.is_set() or (self.trust and not self.trust.caught_up.is_set()):
            await self._until_caught_up()
        seen = self.gate.seen
        if seen is not None:
            for rec in self.feed.drain():
                seen.record(rec.key, rec.where, rec.expires_ms)
        self._take_trust()
        result = await self._check(data, partition, offset)
        if result.untrusted_key and self.trust is not None and (produced_ms is None or produced_ms >= self.trust.synced_ms):
            # A grant acknowledged before this message was produced is on the trust topics now.
            if not await asyncio.to_thread(self.trust.sync, 10.0):
                log.warning("verifier %s: trust topics not read to their end within 10 s", self.region)
            if self._take_trust():
                result = await self._check(data, partition, offset)
        return result

    def _take_trust(self) -> bool:
        if self.trust is None or not self.trust.pending():
            return False
        before = self.gate.trust.version
        self.gate.trust.add_all(self.trust.drain())
        return self.gate.trust.version != before

    async def _check(self, data: bytes, partition: int, offset: int) -> GateResult:
        try:
            return self.gate.check(data, partition, offset, int(time.time() * 1000))
        except RegistryUnavailable:
            return await self._when_registry_answers(data, partition, offset)

    async def _until_caught_up(self) -> None:
        # A message judged before every acceptance of the window is known could be a re-send; one
        # judged before every grant and revocation is known could be wrongly refused or accepted.
        started = last_said = time.monotonic()
        topics_read = ", ".join([*self.feed.topics, *(self.trust.topics if self.trust else [])])
        while not (self.feed.caught_up.is_set() and (self.trust is None or self.trust.caught_up.is_set())):
            await asyncio.sleep(0.05)
            if time.monotonic() - last_said > 10:
                last_said = time.monotonic()
                log.warning(
                    "verifier %s: still reading %s before judging any message", self.region, topics_read
                )
        log.info("verifier %s: read %s in %.1f s", self.region, topics_read, time.monotonic() - started)

    async def _when_registry_answers(self, data: bytes, partition: int, offset: int) -> GateResult:
        # Only a schema id this worker has not seen yet asks the registry (the client caches every
        # answer), so this waits out a registry outage; it is not on the way of every message.
        delay = 0.5
        while True:
            try:
                return self.gate.check(data, partition, offset, int(time.time() * 1000))
            except RegistryUnavailable as e:
                log.warning("verifier %s: %s; retrying in %.1f s", self.region, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def build(settings: Settings, region: str, instance: int = 0) -> faust.App:
    # jarvis.ops is written uncompressed: a message is the ingress message as received, so lz4 would
    # only squeeze the same bytes again (py-spy: 9% of the verifier's CPU), and the broker validates
    # an uncompressed batch without inflating it. MirrorMaker 2's producer compresses for the link.
    app = make_app(settings, "verifier", region, instance, producer_compression_type=None)
    ingress = app.topic(topics.INGRESS, key_type=bytes, value_type=bytes)
    sinks = {
        t: app.topic(t, key_type=bytes, value_type=bytes) for t in (topics.OPS, topics.SEEN, topics.REJECTED)
    }
    registry = RegistryCodec(settings.schema_registry_url) if settings.schema_registry_url else None
    gate = Gate(
        region,
        pipelines(),
        new_view(settings),
        framing=registry.to_single_object if registry else None,
        seen=SeenBatches(),
    )
    feed = SeenFeed(settings.bootstrap(region), region, settings.region_names, settings)
    trust = TrustFeed(settings.bootstrap(region), region, settings.region_names, settings, "verifier")
    judge = Judge(region, gate, feed, trust)
    spans = Spans.exporting(settings.otel_endpoint, f"jarvis-verifier-{region}")
    install_metrics_page(app)

    @app.task
    async def follow_seen() -> None:
        feed.start()
        trust.start()

    @app.agent(ingress)
    async def verify(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            data = event.value or b""
            produced_ms = int(msg.timestamp * 1000) if msg.timestamp else None
            started_ns = time.time_ns() if spans.enabled else 0
            result = await judge.judge(data, msg.partition, msg.offset, produced_ms)
            parent = tracecontext.from_headers(msg.headers)
            if spans.enabled:
                trace = spans.record("verify", parent, started_ns, time.time_ns(), {
                    "jarvis.region": region, "messaging.kafka.partition": msg.partition,
                    "messaging.kafka.offset": msg.offset, "jarvis.accepted": len(result.accepted),
                    "jarvis.rejected": len(result.rejected),
                })  # fmt: skip
            else:
                trace = tracecontext.continued(parent)
            for out in outputs(result, region, msg.topic, msg.partition, msg.offset, event.key, data, trace):
                await sinks[out.topic].send(
                    key=out.key, value=out.value, partition=out.partition, headers=list(out.headers) or None
                )
            if result.accepted:
                OPS_ACCEPTED.labels(region).inc(len(result.accepted))
            for rej in result.rejected:
                for r in rej.reasons:
                    OPS_REJECTED.labels(region, reason_label(r)).inc()

    return app
