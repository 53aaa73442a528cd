"""Operations into jarvis.ops.ingress as the SDK sends them: grouped per partition, signed a batch at
a time with the gateway's own node key, produced with acks=all by an idempotent producer.

`write` is awaited by the HTTP handlers and the MQTT bridge: it returns once Kafka acknowledged
every batch holding the operations, so an answer (or an MQTT PUBACK) never precedes durability.
Memory is bounded: at most `max_inflight_ops` operations are between `write` and their delivery
report; past that `write` raises Overloaded, which becomes a 503 with Retry-After (HTTP) or a
delayed acknowledgement (MQTT: the broker keeps the message).

Given the same operations (ids, HLCs, content) in the same order, the batches are byte-for-byte the
same: a retried Idempotency-Key request rewrites identical batches, and the verifier's re-send
protection (batch identity = the signed digests) keeps the second copy from counting.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaException, Producer

from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.codec import encode_batch
from jarvis.codec.batch_builder import BatchBuilder, Head
from jarvis.codec.records import canonical_args_utf8
from jarvis.config import Settings
from jarvis.crdt import HLC
from jarvis.errors import JarvisError
from jarvis.ops import Operation, OperationBatch
from jarvis.partitioning import partition_for
from jarvis.security.crypto import DataKeyring, encrypt_fields
from jarvis.security.keys import Signer, ensure_node_key
from jarvis.security.signing import sign_batch, sign_digests
from pipelines.loader import Pipelines

BATCH_OPS = 500  # as the SDK's default batch
_MEMO_MAX = 100_000  # object ids whose partition (and encoded heads) are kept


class Overloaded(JarvisError, RuntimeError):
    """Kafka is not keeping up: too much is in flight. Retry after a moment."""


class DeliveryFailed(JarvisError, RuntimeError):
    """Kafka refused or timed out a batch."""


def producer_conf(bootstrap: str, settings: Settings | None = None, principal: str = "ingest") -> dict[str, Any]:
    return {
        **client_conf(bootstrap, principal, settings),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 2,
        "batch.size": 1_000_000,
        "message.max.bytes": topics.PRODUCER_REQUEST_MAX_BYTES,
        "queue.buffering.max.messages": 100_000,
        "delivery.timeout.ms": 30_000,
    }


class Row(NamedTuple):
    """An operation as the HTTP fast path (connectors/ingest/requests.py `FastChecker`) hands it
    over instead of an Operation: of a pipeline without encrypted fields, with the request's
    metadata, its canonical args and encoded head already made. The names are Operation's."""

    op_id: str
    object_id: str
    crdt_type: str
    kind: str
    args: dict[str, Any]
    hlc: int
    partition: int
    head: Head
    args_json: bytes


Message = tuple[int, bytes, bytes, list[int]]  # partition, key, value, indexes of its operations


class BatchEncoder:
    """Operations as the signed ingress messages holding them. No I/O.

    Grouped by partition (in order of first appearance), at most BATCH_OPS a message in request
    order, each message's id derived from its digests and the caller's seed: the same operations
    give the same bytes, whether `messages` (Operations) or `row_messages` (Rows) made them."""

    def __init__(self, node_id: str, region: str, signer: Signer, partitions: int) -> None:
        self.node_id = node_id
        self.region = region
        self.signer = signer
        self.partitions = partitions
        self._partition_of: dict[str, int] = {}
        self._heads: dict[tuple[str, str], Head] = {}

    def partition_of(self, object_id: str) -> int:
        p = self._partition_of.get(object_id)
        if p is None:
            if len(self._partition_of) >= _MEMO_MAX:
                self._partition_of.clear()
            p = self._partition_of[object_id] = partition_for(object_id, self.partitions)
        return p

    def head(self, object_id: str, crdt_type: str, kind: str) -> Head:
        # By object and kind: an object's type is its prefix's, fixed by the pipelines.
        h = self._heads.get((object_id, kind))
        if h is None:
            if len(self._heads) >= _MEMO_MAX:
                self._heads.clear()
            h = self._heads[(object_id, kind)] = Head.of(object_id, crdt_type, kind)
        return h

    def messages(self, ops: Sequence[Operation], seed: str) -> list[Message]:
        out: list[Message] = []
        for p, start, chunk in _chunks([self.partition_of(op.object_id) for op in ops]):
            value = self._encode([ops[i] for i in chunk], f"{seed}/{p}/{start}")
            out.append((p, ops[chunk[0]].object_id.encode(), value, chunk))
        return out

    def row_messages(self, rows: Sequence[Row], metadata: Mapping[str, str], seed: str) -> list[Message]:
        out: list[Message] = []
        for p, start, chunk in _chunks([r.partition for r in rows]):
            b = BatchBuilder(self.node_id, self.region, metadata)
            created = 0
            for i in chunk:
                r = rows[i]
                b.add(r.op_id, r.head, r.args_json, r.hlc)
                if r.hlc > created:
                    created = r.hlc
            out.append((p, rows[chunk[0]].head.key, self._signed(b, created, f"{seed}/{p}/{start}"), chunk))
        return out

    def _encode(self, ops: list[Operation], seed: str) -> bytes:
        created = max(op.hlc for op in ops)
        md = ops[0].metadata
        if all(not op.encrypted_fields and op.metadata == md for op in ops):
            # The SDK's column writer: each field encoded once for both the digest and the body.
            b = BatchBuilder(self.node_id, self.region, md)
            for op in ops:
                b.add(op.op_id, self.head(op.object_id, op.crdt_type, op.kind), canonical_args_utf8(op.args), op.hlc)
            return self._signed(b, created, seed)
        op_digests, signature = sign_batch(ops, self.signer)
        batch_id = _batch_id(op_digests, seed)
        batch = OperationBatch(batch_id, self.node_id, self.signer.key_id, self.region, created, ops, op_digests, signature)
        return encode_batch(batch)

    def _signed(self, b: BatchBuilder, created: int, seed: str) -> bytes:
        op_digests = bytes(b.digests)
        signature = sign_digests(op_digests, self.signer)
        return b.encode(_batch_id(op_digests, seed), self.signer.key_id, created, signature)


def _chunks(partitions: list[int]) -> list[tuple[int, int, list[int]]]:
    """(partition, rank of the chunk's first operation in its partition, indexes) per message."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(partitions):
        groups.setdefault(p, []).append(i)
    return [
        (p, start, idxs[start : start + BATCH_OPS])
        for p, idxs in groups.items()
        for start in range(0, len(idxs), BATCH_OPS)
    ]


def _batch_id(op_digests: bytes, seed: str) -> str:
    # Derived, not random: a rewrite of the same operations is the same message.
    return hashlib.sha256(op_digests + seed.encode()).hexdigest()[:32]


class IngressWriter:
    def __init__(
        self,
        settings: Settings,
        region: str,
        node_id: str,
        pipelines: Pipelines,
        *,
        max_inflight_ops: int = 200_000,
    ) -> None:
        self.region = region
        self.node_id = node_id
        self.pipelines = pipelines
        # The development flow, as the SDK's: the gateway's key is trusted by every region it knows.
        # Trusted by the grant `jarvis stack up` (or an admin) gave this node, never by itself.
        self.signer = ensure_node_key(node_id, keys_dir=settings.keys_dir)
        self.keyring = DataKeyring(settings.keys_dir)
        self.hlc = HLC(node_id)
        self.bootstrap = settings.bootstrap(region)
        self.settings = settings
        self.producer = Producer(producer_conf(self.bootstrap, settings))
        md = self.producer.list_topics(topics.INGRESS, timeout=10)
        self.partitions = len(md.topics[topics.INGRESS].partitions)
        if not self.partitions:
            raise DeliveryFailed(f"topic {topics.INGRESS} does not exist: run `jarvis stack up`")
        self.encoder = BatchEncoder(node_id, region, self.signer, self.partitions)
        self.partition_of = self.encoder.partition_of
        self.max_inflight_ops = max_inflight_ops
        self.inflight_ops = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="ingest-producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def operation(
        self, op_id: str, object_id: str, crdt_type: str, kind: str, args: dict[str, Any], hlc: int,
        metadata: dict[str, str],
    ) -> Operation:  # fmt: skip
        op = Operation(op_id, object_id, crdt_type, kind, args, self.node_id, self.region, hlc, metadata, [])
        rule = self.pipelines.rule_for(object_id)
        if rule is not None and rule.encrypt:
            fields = [f for f in rule.encrypt if f in args]
            if fields:
                op = encrypt_fields(op, fields, self.keyring.key(rule.pipeline))
        return op

    async def write(self, ops: Sequence[Operation], batch_seed: str = "") -> list[tuple[int, int]]:
        """Produce `ops`; once Kafka has them all, each one's (ingress partition, offset)."""
        return await self._send(len(ops), lambda: self.encoder.messages(ops, batch_seed))

    async def write_rows(
        self, rows: Sequence[Row], metadata: Mapping[str, str], batch_seed: str = ""
    ) -> list[tuple[int, int]]:
        """`write` for the fast path's Rows, which share `metadata`: the same messages as `write`
        of the Operations they stand for."""
        return await self._send(len(rows), lambda: self.encoder.row_messages(rows, metadata, batch_seed))

    async def _send(self, n: int, encode: Callable[[], list[Message]]) -> list[tuple[int, int]]:
        if not n:
            return []
        with self._lock:
            if self.inflight_ops + n > self.max_inflight_ops:
                raise Overloaded(f"{self.inflight_ops} operations already waiting for Kafka")
            self.inflight_ops += n
        loop = asyncio.get_running_loop()
        try:
            waits: list[tuple[list[int], asyncio.Future[tuple[int, int]]]] = []
            for p, key, value, chunk in encode():
                fut: asyncio.Future[tuple[int, int]] = loop.create_future()
                self._produce(p, key, value, loop, fut)
                waits.append((chunk, fut))
            out: list[tuple[int, int]] = [(-1, -1)] * n
            for chunk, fut in waits:
                p, off = await fut
                for i in chunk:
                    out[i] = (p, off)
            return out
        finally:
            with self._lock:
                self.inflight_ops -= n

    def _produce(
        self, partition: int, key: bytes, value: bytes, loop: asyncio.AbstractEventLoop,
        fut: asyncio.Future[tuple[int, int]],
    ) -> None:  # fmt: skip
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                result: Any = DeliveryFailed(f"Kafka did not take the batch: {err}")
            else:
                result = (msg.partition(), msg.offset())
            loop.call_soon_threadsafe(_settle, fut, result)

        try:
            self.producer.produce(topics.INGRESS, key=key, value=value, partition=partition, on_delivery=done)
        except BufferError:
            raise Overloaded("the producer's queue is full") from None
        except KafkaException as e:
            raise DeliveryFailed(str(e)) from None

    def close(self) -> None:
        self.producer.flush(10)
        self._stop.set()
        self._poller.join(2)


def _settle(fut: asyncio.Future[Any], result: Any) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
