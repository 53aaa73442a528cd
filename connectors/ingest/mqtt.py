"""The gateway's MQTT bridge: the region's Mosquitto broker into jarvis.ops.ingress, QoS 1 end to end.

Topics (the object id is the rest of the topic, so ids with `/` work):
  jarvis/ops/<object_id>   an operation body, as over HTTP ({"kind", "args"}; object_id optional)
  telemetry/<object_id>    {"ts": 1732520000.5, "value": 93.1, "metadata": {...}} -> append_data_point
                           (no ts: the time the gateway received it)

- A message is acknowledged (PUBACK) only after Kafka acknowledged the batch holding it: paho's
  manual acks. Until then the broker keeps it; the session is persistent (clean_session false, a
  fixed client id per instance), so a gateway crash loses nothing the broker holds.
- Instances of a region share the subscriptions (`$share/jarvis-ingest-<region>/...`).
- Only the region's configured instances (the ingest role's `instances`, which `jarvis stack up`
  runs and its supervisor restarts) keep a persistent session: Mosquitto keeps dispatching a share
  to an offline persistent member and queues it there (eclipse-mosquitto/mosquitto#1747), so an
  instance that never comes back would take 1/N of the region's messages for good. Any other
  instance number first drains a persistent session left under its client id (resumes it without
  the shared subscription, writes what it holds, acknowledges), then serves with a clean session
  (jarvis/mqtt_sessions.py).
- Duplicates: a message the broker sends again after a reconnect carries the dup flag and the same
  packet id. The bridge remembers, per packet id, the hash of the topic and payload of the last
  message it wrote (and records `mqtt: <packet id>:<hash>` in the operation's metadata, so a restarted gateway
  reloads that memory from its own recent ingress batches); a dup whose packet id and hash match
  was written already and is only acknowledged. So a redelivery is processed, never dropped, and
  counted once. (A packet id is not reused while its message is unacknowledged, so the latest
  message per packet id is the one a redelivery repeats.)
- A payload that cannot become an operation goes to jarvis.ops.rejected with the MQTT topic, the
  raw payload and the reason, and is then acknowledged: never dropped silently, never redelivered
  forever.
- Who published is not told to subscribers by MQTT, so operations record `principal: mqtt` (the
  broker admitted only keys whose role may write, through its password and ACL files).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import Counter

from connectors.ingest import op_ids
from connectors.ingest.requests import MAX_LINE_BYTES
from connectors.ingest.writer import BATCH_OPS, DeliveryFailed, IngressWriter, Overloaded
from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.codec import CodecError, encode_rejected
from jarvis.codec.records import decode_batch_record
from jarvis.gate import RuleVerifier
from jarvis.json_ops import OpInputError, OpParser
from jarvis.mqtt_sessions import client_id, persistent, share_group
from jarvis.ops import Operation, RejectedOperation

log = logging.getLogger("jarvis.ingest.mqtt")

MESSAGES = Counter("jarvis_ingest_mqtt_messages_total", "MQTT messages the bridge handled", ["region", "outcome"])
OPS_PREFIX = "jarvis/ops/"
TELEMETRY_PREFIX = "telemetry/"
DEDUP_WINDOW = 200_000  # packet ids remembered (there are only 65,535 per session)
SEED_WINDOW_MS = 10 * 60 * 1000  # how far back a restarted bridge reads its own batches
RETRY_S = 0.5
# Draining a left-over session: once it was unsubscribed and every message it sent is acknowledged,
# the broker sends what it still holds as fast as acks free its in-flight window; this long with
# nothing arriving means it holds nothing more.
DRAIN_QUIET_S = 2.0

_rules = RuleVerifier()


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    received: float
    key: str = field(init=False)  # packet_hash(topic, payload): made once, in paho's thread

    def __post_init__(self) -> None:
        self.key = packet_hash(self.topic, self.payload)


def packet_hash(topic: str, payload: bytes) -> str:
    """A message's identity beside its packet id. The topic is part of it: devices often publish the
    same payload to many topics (`{"value": 1}`), and a redelivery must not be taken for an earlier,
    different message that reused its packet id."""
    return hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:16]


def to_operation_item(topic: str, payload: bytes, received: float) -> dict[str, Any]:
    """The JSON operation an MQTT message stands for (raises OpInputError). Pure."""
    if len(payload) > MAX_LINE_BYTES:
        raise OpInputError([f"payload of {len(payload)} bytes exceeds {MAX_LINE_BYTES}"])
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise OpInputError([f"not JSON: {e}"]) from None
    if not isinstance(body, dict):
        raise OpInputError(["the payload must be a JSON object"])
    if topic.startswith(TELEMETRY_PREFIX):
        oid = topic[len(TELEMETRY_PREFIX) :]
        unknown = sorted(set(body) - {"ts", "value", "metadata"})
        if unknown:
            raise OpInputError([f"a telemetry payload has ts, value, metadata; not {', '.join(unknown)}"])
        args: dict[str, Any] = {"timestamp": body.get("ts", received), "value": body.get("value")}
        if "value" not in body:
            raise OpInputError(["a telemetry payload needs a value"])
        if body.get("metadata"):
            args["metadata"] = body["metadata"]
        return {"object_id": oid, "kind": "append_data_point", "args": args}
    if topic.startswith(OPS_PREFIX):
        oid = topic[len(OPS_PREFIX) :]
        if body.get("object_id", oid) != oid:
            raise OpInputError([f"object_id {body.get('object_id')!r} differs from the topic's {oid!r}"])
        return {**body, "object_id": oid}
    raise OpInputError([f"topic {topic!r} is neither {OPS_PREFIX}<object_id> nor {TELEMETRY_PREFIX}<object_id>"])


def already_written(written: Mapping[int, str], m: Message) -> bool:
    """A redelivery of the message last written under its packet id: acknowledge, do not write."""
    return m.dup and written.get(m.mid) == m.key


class MqttBridge:
    def __init__(
        self,
        writer: IngressWriter,
        host: str,
        port: int,
        region: str,
        instance: int,
        user: str,
        password: str,
        configured: int = 1,
    ) -> None:
        self.writer = writer
        self.parser = OpParser(writer.pipelines.rule_for)
        self.region = region
        self.instance = instance
        self.configured = configured  # the region's configured gateway instances (0 .. configured-1)
        self.persistent = persistent(instance, configured)
        self.client_id = client_id(region, instance)
        self.group = share_group(region)
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.queue: asyncio.Queue[Message] = asyncio.Queue()  # bounded by the broker's in-flight limit
        self.written: OrderedDict[int, str] = OrderedDict()  # packet id -> hash of the last one written
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connected = asyncio.Event()
        self.drained = 0  # messages a left-over session held, written before serving (unconfigured only)
        self._draining = False
        self._session_present: asyncio.Future[bool] | None = None
        self.client = self._client(clean_session=not self.persistent)

    def _client(self, clean_session: bool) -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        c.username_pw_set(self.user, self.password)
        c.max_inflight_messages_set(1000)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.reconnect_delay_set(0.2, 5)
        return c

    def _topics(self) -> list[str]:
        return [f"$share/{self.group}/{OPS_PREFIX}#", f"$share/{self.group}/{TELEMETRY_PREFIX}#"]

    # -- paho's thread ----------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the bridge: %s", reason)
            return
        if self._draining:
            # A resumed session keeps its shared subscription: leave the group first, so that only
            # what the broker already holds for this session arrives.
            if flags.session_present:
                client.unsubscribe(self._topics())
            fut = self._session_present
            if self.loop is not None and fut is not None:
                present = bool(flags.session_present)
                self.loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(present))
            return
        client.subscribe([(t, 1) for t in self._topics()])
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.connected.set)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        m = Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.dup), time.time())
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.queue.put_nowait, m)

    # -- asyncio side -----------------------------------------------------------------------------
    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._seed)
        if not self.persistent:
            log.warning(
                "ingest instance %d is not one of %s's %d configured instance(s) (the ingest role's `instances`): "
                "clean MQTT session, which the broker ends when this instance stops, so it never keeps a share of "
                "the region's messages; what it has in flight when it stops or crashes may be lost",
                self.instance, self.region, self.configured,
            )  # fmt: skip
            await self._drain_left_session()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        try:
            while True:
                await self._handle(await self._next_batch())
        finally:
            self.client.loop_stop()
            self.client.disconnect()

    async def _next_batch(self, first: Message | None = None) -> list[Message]:
        batch = [first if first is not None else await self.queue.get()]
        while len(batch) < BATCH_OPS and not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch

    async def _drain_left_session(self) -> None:
        """Write what a persistent session under this client id holds (one an earlier run of this
        instance number left, or older code), then leave it empty for the clean-session connect,
        which discards it. Without this, that connect would drop the messages queued there."""
        assert self.loop is not None
        self._draining = True
        self._session_present = self.loop.create_future()
        drain = self._client(clean_session=False)
        self.client = drain  # _handle acknowledges on the session the messages came from
        drain.connect_async(self.host, self.port, keepalive=30)
        drain.loop_start()
        try:
            if await self._session_present:
                log.warning("%s: a persistent session was left under this client id: draining it", self.client_id)
                while True:
                    try:
                        first = await asyncio.wait_for(self.queue.get(), DRAIN_QUIET_S)
                    except TimeoutError:
                        break
                    batch = await self._next_batch(first)
                    await self._handle(batch)
                    self.drained += len(batch)
                log.warning("%s: %d message(s) of the left session written; ending it", self.client_id, self.drained)
        finally:
            drain.disconnect()  # after the acks, which paho sends in order
            drain.loop_stop()
            self._draining = False
        self.client = self._client(clean_session=True)

    async def _handle(self, batch: list[Message]) -> None:
        ops: list[tuple[Message, Operation]] = []
        rejected: list[tuple[Message, str | None, list[str]]] = []
        dup_acks: list[Message] = []
        nonce = uuid.uuid4().hex[:16]
        ms = int(time.time() * 1000)
        for i, m in enumerate(batch):
            if already_written(self.written, m):
                dup_acks.append(m)
                continue
            oid: str | None = None
            try:
                item = to_operation_item(m.topic, m.payload, m.received)
                oid = item["object_id"]
                jop = self.parser.parse(item)
            except OpInputError as e:
                rejected.append((m, oid, e.reasons))
                continue
            op_id = op_ids.make(self.writer.partition_of(jop.object_id), ms, nonce, i)
            meta = {"principal": "mqtt", "via": self.writer.node_id, "mqtt": f"{m.mid}:{m.key}"}
            op = self.writer.operation(op_id, jop.object_id, jop.crdt_type, jop.kind, jop.args, self.writer.hlc.now(), meta)
            rule = self.writer.pipelines.rule_for(jop.object_id)
            reasons = _rules.check(op, rule)[0] if rule is not None else []
            if reasons:
                rejected.append((m, oid, reasons))
            else:
                ops.append((m, op))
        while True:
            try:
                await self.writer.write([op for _, op in ops], batch_seed=nonce)
                await self._reject(rejected)
                break
            except (Overloaded, DeliveryFailed) as e:
                # Not acknowledged: the broker keeps the messages; try again shortly.
                log.warning("Kafka did not take %d MQTT messages (%s); retrying", len(ops), e)
                await asyncio.sleep(RETRY_S)
        for m, _ in ops:
            self._remember(m.mid, m.key)
        for m in [*(m for m, _ in ops), *(m for m, _, _ in rejected), *dup_acks]:
            self.client.ack(m.mid, m.qos)
        MESSAGES.labels(self.region, "written").inc(len(ops))
        MESSAGES.labels(self.region, "rejected").inc(len(rejected))
        MESSAGES.labels(self.region, "duplicate").inc(len(dup_acks))

    def _remember(self, mid: int, h: str) -> None:
        self.written[mid] = h
        self.written.move_to_end(mid)
        while len(self.written) > DEDUP_WINDOW:
            self.written.popitem(last=False)

    async def _reject(self, rejected: list[tuple[Message, str | None, list[str]]]) -> None:
        if not rejected:
            return
        loop = asyncio.get_running_loop()
        futs = []
        for m, oid, reasons in rejected:
            rec = RejectedOperation(
                original=m.payload, reasons=[*reasons, f"mqtt topic {m.topic}"], topic=m.topic, partition=-1,
                offset=-1, rejected_at_ms=int(time.time() * 1000), region=self.region, object_id=oid,
            )  # fmt: skip
            fut: asyncio.Future[None] = loop.create_future()

            def done(err: Any, msg: Any, fut: asyncio.Future[None] = fut) -> None:
                res = DeliveryFailed(str(err)) if err is not None else None
                loop.call_soon_threadsafe(lambda: fut.done() or (fut.set_exception(res) if res else fut.set_result(None)))

            try:
                self.writer.producer.produce(topics.REJECTED, key=(oid or m.topic).encode(), value=encode_rejected(rec), on_delivery=done)
            except BufferError:
                raise Overloaded("the producer's queue is full") from None
            futs.append(fut)
        await asyncio.gather(*futs)
        log.info("%d MQTT payload(s) rejected", len(rejected))

    def _seed(self) -> None:
        """Reload which packets this bridge wrote lately, from its own batches on ingress."""
        w = self.writer
        c = Consumer({**client_conf(w.bootstrap, "ingest", w.settings), "group.id": f"jarvis-ingest-seed-{uuid.uuid4().hex}",
                      "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
        try:
            since = int(time.time() * 1000) - SEED_WINDOW_MS
            parts = [TopicPartition(topics.INGRESS, p, since) for p in range(w.partitions)]
            starts = c.offsets_for_times(parts, timeout=10)
            assign = []
            for tp in starts:
                _, high = c.get_watermark_offsets(TopicPartition(topics.INGRESS, tp.partition), timeout=10)
                if 0 <= tp.offset < high:
                    assign.append(TopicPartition(topics.INGRESS, tp.partition, tp.offset))
            if not assign:
                return
            c.assign(assign)
            left = {tp.partition for tp in assign}
            seen: list[tuple[int, int, int, str]] = []  # (hlc, position, mid, hash)
            while left:
                msgs = c.consume(500, 2.0)
                if not msgs:
                    break
                for m in msgs:
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            left.discard(m.partition())
                        continue
                    try:
                        rec = decode_batch_record(m.value() or b"")
                    except CodecError:
                        continue
                    if rec.get("node_id") != w.node_id:
                        continue
                    for hlc, md in zip(rec.get("hlcs") or [], rec.get("metadata") or [], strict=False):
                        tag = (md or {}).get("mqtt")
                        if tag:
                            mid, _, h = tag.partition(":")
                            seen.append((hlc, len(seen), int(mid), h))
            for _, _, mid, h in sorted(seen):  # in the order they were made: the latest per packet id wins
                self._remember(mid, h)
            log.info("MQTT dedup window reloaded: %d packets", len(seen))
        finally:
            c.close()
