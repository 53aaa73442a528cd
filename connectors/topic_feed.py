"""Follow whole topics from their beginning in a thread: the reader under the verifier's feeds of
accepted batches (connectors/seen_feed.py) and of trust records (connectors/trust_feed.py).

A plain confluent-kafka consumer assigned every partition of its topics (no group: every reader
needs every record; the group id is random and never commits). A topic that does not exist yet (a
mirror MirrorMaker has not created) is looked for again every NEW_TOPICS_EVERY_S. Decoded records
reach the caller's event loop through a queue it drains, so what it folds them into needs no lock.

`caught_up` is set once every partition that held records at start has been read to its end then.
`sync()` blocks until every record on the topics when it was called has been read: a reader about
to act on the absence of a record (a verifier about to reject a key as untrusted) asks first, since
a record acknowledged a millisecond before may not have been polled yet. Syncs coalesce (one at a
time, each covering every caller that asked before it began).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connectors.kafka_clients import client_conf
from jarvis.codec import CodecError
from jarvis.config import Settings

log = logging.getLogger(__name__)

NEW_TOPICS_EVERY_S = 5.0  # a mirrored topic appears once MirrorMaker has created it
TP = tuple[str, int]
T = TypeVar("T")


class TopicFeed(Generic[T]):
    def __init__(
        self,
        name: str,  # for the thread, the group id and log lines: "seen", "trust"
        bootstrap: str,
        region: str,
        topic_names: Sequence[str],
        decode: Callable[[bytes], T],
        principal: str,
        settings: Settings | None = None,
    ) -> None:
        self.name = name
        self.region = region
        self.topics = list(topic_names)
        self._decode = decode
        self._conf = {
            **client_conf(bootstrap, principal, settings),
            "group.id": f"jarvis-{name}-{region}-{uuid.uuid4().hex}",  # never commits
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
        self._records: queue.SimpleQueue[T] = queue.SimpleQueue()
        self.caught_up = threading.Event()
        self.undecodable = 0
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._sync_wanted = 0  # sync generations asked for ...
        self._sync_done = 0  # ... and completed
        self.synced_ms = 0  # wall time at which the last completed sync read the partitions' ends
        self._thread = threading.Thread(target=self._run, name=f"{name}-feed-{region}", daemon=True)

    def start(self) -> TopicFeed[T]:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def pending(self) -> bool:
        return not self._records.empty()

    def drain(self) -> Iterator[T]:
        """The records read since the last drain."""
        while True:
            try:
                yield self._records.get_nowait()
            except queue.Empty:
                return

    def sync(self, timeout: float = 10.0) -> bool:
        """Block until every record on the topics when this was called has been read."""
        with self._cond:
            self._sync_wanted += 1
            ticket = self._sync_wanted
            return self._cond.wait_for(lambda: self._sync_done >= ticket, timeout)

    def wait_caught_up(self, timeout: float) -> bool:
        return self.caught_up.wait(timeout)

    def _run(self) -> None:
        consumer = Consumer(self._conf)
        assigned: set[TP] = set()
        behind: set[TP] = set()  # partitions not yet read up to where they stood at start
        read_to: dict[TP, int] = {}  # next offset to read, per partition
        syncing: dict[TP, int] | None = None  # ends to reach for the sync being served
        serving, sync_started_ms = 0, 0
        started = False
        next_look = 0.0
        try:
            while not self._stop.is_set():
                with self._cond:
                    wanted = self._sync_wanted
                if syncing is None and wanted > self._sync_done:
                    serving, sync_started_ms = wanted, int(time.time() * 1000)
                    self._assign_new(consumer, assigned)
                    syncing = {tp: hi for tp in assigned if (hi := self._end(consumer, tp)) > read_to.get(tp, 0)}
                if time.monotonic() >= next_look:
                    new = self._assign_new(consumer, assigned)
                    if not started:
                        behind |= {tp for tp in new if self._has_records(consumer, tp)}
                        started = True
                    next_look = time.monotonic() + NEW_TOPICS_EVERY_S
                if not behind and started:
                    self.caught_up.set()
                if syncing is not None and not syncing:
                    with self._cond:
                        self._sync_done = serving
                        self.synced_ms = sync_started_ms
                        self._cond.notify_all()
                    syncing = None
                msg = consumer.poll(0.02 if syncing is not None else 0.2)
                if msg is None:
                    continue
                tp = (msg.topic(), msg.partition())
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        behind.discard(tp)
                        read_to[tp] = max(read_to.get(tp, 0), msg.offset())
                        self._reached(syncing, tp, read_to[tp])
                    else:
                        log.warning("%s feed: %s", self.name, msg.error())
                    continue
                read_to[tp] = msg.offset() + 1
                try:
                    self._records.put(self._decode(msg.value() or b""))
                except CodecError as e:
                    self.undecodable += 1
                    log.warning("%s feed: undecodable record at %s/%s/%s: %s", self.name, *tp, msg.offset(), e)
                self._reached(syncing, tp, read_to[tp])
        finally:
            consumer.close()

    @staticmethod
    def _reached(syncing: dict[TP, int] | None, tp: TP, offset: int) -> None:
        if syncing is not None and tp in syncing and offset >= syncing[tp]:
            del syncing[tp]

    def _assign_new(self, consumer: Consumer, assigned: set[TP]) -> set[TP]:
        try:
            md = consumer.list_topics(timeout=10)
        except KafkaException as e:
            log.warning("%s feed: cannot list topics: %s", self.name, e)
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

    def _end(self, consumer: Consumer, tp: TP) -> int:
        try:
            return consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)[1]
        except KafkaException as e:
            log.warning("%s feed: no end offset of %s/%s: %s", self.name, *tp, e)
            return 0

    @staticmethod
    def _has_records(consumer: Consumer, tp: TP) -> bool:
        low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
        return high > low
