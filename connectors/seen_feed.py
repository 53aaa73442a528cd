"""The verifier's view of every region's accepted batches: jarvis.ops.seen and its mirrors.

Each verifier writes a SeenBatch record for every batch it accepts; MirrorMaker 2 carries them to
the other regions as `<region>.jarvis.ops.seen`. This reader follows all of them, from the oldest
record each topic keeps (its retention covers the replay window), so a verifier that restarts or
takes over a partition knows every acceptance of the window before it judges a message: the store
lives in Kafka, and each worker's memory holds only what is still inside the window.

A plain confluent-kafka consumer in its own thread, assigned every partition (no group: every
verifier needs every record). Records reach the verifier's event loop through a queue it drains
before each check, so the store itself needs no lock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.codec import CodecError
from jarvis.codec.seen import SeenRecord, decode_seen
from jarvis.config import Settings

log = logging.getLogger(__name__)

NEW_TOPICS_EVERY_S = 5.0  # a mirrored topic appears once MirrorMaker has created it


class SeenFeed:
    def __init__(self, bootstrap: str, region: str, regions: Sequence[str], settings: Settings | None = None) -> None:
        self.topics = [topics.SEEN, *(topics.mirrored(r, topics.SEEN) for r in regions if r != region)]
        self._conf = {
            **client_conf(bootstrap, "verifier", settings),
            "group.id": f"jarvis-seen-{region}-{uuid.uuid4().hex}",  # never commits
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
        self._records: queue.SimpleQueue[SeenRecord] = queue.SimpleQueue()
        self.caught_up = threading.Event()
        self.undecodable = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"seen-feed-{region}", daemon=True)

    def start(self) -> SeenFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def drain(self) -> Iterator[SeenRecord]:
        """The records read since the last drain (called from the verifier's event loop)."""
        while True:
            try:
                yield self._records.get_nowait()
            except queue.Empty:
                return

    def _run(self) -> None:
        consumer = Consumer(self._conf)
        assigned: set[tuple[str, int]] = set()
        behind: set[tuple[str, int]] = set()  # partitions not yet read up to where they stood at start
        started = False
        next_look = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_look:
                    new = self._assign_new(consumer, assigned)
                    if not started:
                        behind |= {tp for tp in new if self._has_records(consumer, tp)}
                        started = True
                    next_look = time.monotonic() + NEW_TOPICS_EVERY_S
                if not behind and started:
                    self.caught_up.set()
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        behind.discard((msg.topic(), msg.partition()))
                    else:
                        log.warning("seen feed: %s", msg.error())
                    continue
                try:
                    self._records.put(decode_seen(msg.value() or b""))
                except CodecError as e:
                    self.undecodable += 1
                    log.warning("seen feed: undecodable record at %s/%s/%s: %s", msg.topic(), msg.partition(), msg.offset(), e)
        finally:
            consumer.close()

    def _assign_new(self, consumer: Consumer, assigned: set[tuple[str, int]]) -> set[tuple[str, int]]:
        try:
            md = consumer.list_topics(timeout=10)
        except KafkaException as e:
            log.warning("seen feed: cannot list topics: %s", e)
            return set()
        new = {
            (t, p)
            for t in self.topics
            if t in md.topics and md.topics[t].error is None
            for p in md.topics[t].partitions
            if (t, p) not in assigned
        }
        if new:
            consumer.incremental_assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in sorted(new)])
            assigned |= new
        return new

    @staticmethod
    def _has_records(consumer: Consumer, tp: tuple[str, int]) -> bool:
        low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
        return high > low
