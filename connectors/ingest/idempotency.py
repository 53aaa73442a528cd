"""Idempotency-Key records on the compacted jarvis.ingest.idempotency topic, shared by every gateway
instance of the region and surviving their restarts.

Per (key id of the caller, Idempotency-Key), two records in turn:
  pending   {"h": request hash, "nonce", "ms", "hlcs"}: written (acks=all) before any operation is,
            so that a retry after a crash rebuilds exactly the same operations (same ids, HLCs,
            batches); the verifier's re-send protection then keeps a copy that did land from
            counting twice;
  done      {"h", "status", "body"}: the answer, replayed to every retry for 24 h.
Of two pending records for one key (two instances racing), the first in the log wins: each waits
until it has read its own record back and then uses the winner's nonce and HLCs.

A consumer thread reads the topic from the start (retention 25 h) and keeps tailing it; `get`
first waits until it has read up to the partition's end as it was when asked, so a record another
instance wrote a moment ago is seen.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.config import Settings
from jarvis.errors import JarvisError
from jarvis.partitioning import partition_for

TTL_MS = 24 * 3600 * 1000
CATCH_UP_S = 5.0


class IdempotencyUnavailable(JarvisError, RuntimeError):
    """The record topic could not be read up to date in time."""


class IdempotencyStore:
    def __init__(self, bootstrap: str, settings: Settings | None = None) -> None:
        self.bootstrap = bootstrap
        conf = client_conf(bootstrap, "ingest", settings)
        self.producer = Producer({**conf, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
        self.consumer = Consumer(
            {
                **conf,
                "group.id": f"jarvis-ingest-idem-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
            }
        )
        # Watermarks through a handle of their own: the tail thread sits in consume() on the other.
        self._marks = Consumer({**conf, "group.id": f"jarvis-ingest-marks-{uuid.uuid4().hex}"})
        md = self.consumer.list_topics(topics.IDEMPOTENCY, timeout=10).topics[topics.IDEMPOTENCY]
        self.partitions = len(md.partitions)
        self.consumer.assign([TopicPartition(topics.IDEMPOTENCY, p, OFFSET_BEGINNING) for p in md.partitions])
        self._records: dict[bytes, dict[str, Any]] = {}
        self._read_to: dict[int, int] = {p: 0 for p in md.partitions}  # next offset to read per partition
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, name="ingest-idempotency", daemon=True)
        self._thread.start()
        self._ptimer = threading.Thread(target=self._poll_producer, daemon=True)
        self._ptimer.start()

    def _poll_producer(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def _tail(self) -> None:
        while not self._stop.is_set():
            msgs = self.consumer.consume(500, 0.1)
            if not msgs:
                continue
            now = int(time.time() * 1000)
            with self._cond:
                for m in msgs:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            continue
                        continue
                    self._read_to[m.partition()] = m.offset() + 1
                    key = m.key() or b""
                    try:
                        rec = orjson.loads(m.value() or b"null")
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(rec, dict) or now - m.timestamp()[1] > TTL_MS:
                        continue
                    old = self._records.get(key)
                    # The first pending record of a key wins; a done record replaces a pending one.
                    if old is not None and old.get("state") == "pending" and rec.get("state") == "pending":
                        continue
                    if old is not None and old.get("state") == "done":
                        continue
                    self._records[key] = rec
                self._cond.notify_all()

    def _partition(self, key: bytes) -> int:
        return partition_for(key.decode(), self.partitions)

    def _catch_up(self, key: bytes, at_least: int | None = None) -> None:
        p = self._partition(key)
        if at_least is None:
            _, high = self._marks.get_watermark_offsets(TopicPartition(topics.IDEMPOTENCY, p), timeout=CATCH_UP_S)
            at_least = high
        deadline = time.monotonic() + CATCH_UP_S
        with self._cond:
            while self._read_to.get(p, 0) < at_least:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IdempotencyUnavailable("the Idempotency-Key records could not be read in time")
                self._cond.wait(left)

    async def get(self, key: bytes) -> dict[str, Any] | None:
        await asyncio.to_thread(self._catch_up, key)
        with self._cond:
            return self._records.get(key)

    async def put(self, key: bytes, record: dict[str, Any]) -> dict[str, Any]:
        """Write `record` (acks=all), read the log back to it; the key's record that then holds."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()

        def done(err: Any, msg: Any) -> None:
            res: Any = IdempotencyUnavailable(str(err)) if err is not None else msg.offset()
            loop.call_soon_threadsafe(lambda: fut.done() or (fut.set_exception(res) if isinstance(res, Exception) else fut.set_result(res)))

        self.producer.produce(topics.IDEMPOTENCY, key=key, value=orjson.dumps(record), partition=self._partition(key), on_delivery=done)
        offset = await fut
        await asyncio.to_thread(self._catch_up, key, offset + 1)
        with self._cond:
            return self._records.get(key, record)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.producer.flush(5)
        self.consumer.close()
        self._marks.close()
