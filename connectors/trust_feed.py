"""Trust records on Kafka: the verifier's follower of `jarvis.trust` and its mirrors, and publishing.

An admin (`jarvis keys trust|revoke|rotate`, `jarvis stack up`, a development Client) writes
admin-signed records (jarvis/security/trust.py) to its region's compacted `jarvis.trust`; MirrorMaker
2 carries them to every other region as `<region>.jarvis.trust`. A verifier reads all of them from
the beginning before it judges its first message (as it reads jarvis.ops.seen,
connectors/seen_feed.py), then keeps following, so every verifier in every region, on any host,
folds the same records into the same TrustView.

Publishing then producing is a race: a client that writes a grant and, a millisecond later, its
first batch could have the batch judged before the feed's thread has polled the grant. So a
verifier about to reject a message for its key first asks the feed to `sync()`: read every trust
partition up to the end it has now, which holds every record acknowledged before the message was
produced. Syncs coalesce (one at a time, each covering every message produced before it began).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from connectors.kafka_clients import ADMIN, client_conf
from jarvis import topics
from jarvis.codec import CodecError
from jarvis.codec.trust import decode_trust, encode_trust
from jarvis.config import Settings
from jarvis.security.keys import admin_public_keys
from jarvis.security.trust import TrustRecord, TrustView

log = logging.getLogger(__name__)

NEW_TOPICS_EVERY_S = 5.0  # a mirrored topic appears once MirrorMaker has created it
TP = tuple[str, int]


def trust_topics(region: str, regions: Sequence[str]) -> list[str]:
    return [topics.TRUST, *(topics.mirrored(r, topics.TRUST) for r in regions if r != region)]


class TrustFeed:
    def __init__(
        self, bootstrap: str, region: str, regions: Sequence[str], settings: Settings | None = None,
        principal: str = ADMIN,
    ) -> None:  # fmt: skip
        self.region = region
        self.topics = trust_topics(region, regions)
        self._conf = {
            **client_conf(bootstrap, principal, settings),
            "group.id": f"jarvis-trust-{region}-{uuid.uuid4().hex}",  # never commits
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
        self._records: queue.SimpleQueue[TrustRecord] = queue.SimpleQueue()
        self.caught_up = threading.Event()
        self.undecodable = 0
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._sync_wanted = 0  # sync generations asked for ...
        self._sync_done = 0  # ... and completed
        self.synced_ms = 0  # wall time at which the last completed sync read the partitions' ends
        self._thread = threading.Thread(target=self._run, name=f"trust-feed-{region}", daemon=True)

    def start(self) -> TrustFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def pending(self) -> bool:
        return not self._records.empty()

    def drain(self) -> Iterator[TrustRecord]:
        """The records read since the last drain (called from the verifier's event loop)."""
        while True:
            try:
                yield self._records.get_nowait()
            except queue.Empty:
                return

    def sync(self, timeout: float = 10.0) -> bool:
        """Block until every record on the trust topics when this was called has been read."""
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
                        log.warning("trust feed: %s", msg.error())
                    continue
                read_to[tp] = msg.offset() + 1
                try:
                    self._records.put(decode_trust(msg.value() or b""))
                except CodecError as e:
                    self.undecodable += 1
                    log.warning("trust feed: undecodable record at %s/%s/%s: %s", *tp, msg.offset(), e)
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
            log.warning("trust feed: cannot list topics: %s", e)
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
    def _end(consumer: Consumer, tp: TP) -> int:
        try:
            return consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)[1]
        except KafkaException as e:
            log.warning("trust feed: no end offset of %s/%s: %s", *tp, e)
            return 0

    @staticmethod
    def _has_records(consumer: Consumer, tp: TP) -> bool:
        low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
        return high > low


def new_view(settings: Settings) -> TrustView:
    return TrustView(admin_public_keys(settings.keys_dir, settings.admin_public_keys))


def read_view(settings: Settings, region: str | None = None, timeout: float = 30.0) -> TrustView:
    """Every trust record a region holds now (its own and the mirrored ones), folded: for the CLI."""
    region = region or settings.region
    feed = TrustFeed(settings.bootstrap(region), region, settings.region_names, settings).start()
    try:
        if not feed.wait_caught_up(timeout):
            raise TimeoutError(f"trust topics of {region} not read within {timeout:.0f} s")
        feed.sync(timeout)
        view = new_view(settings)
        view.add_all(feed.drain())
        return view
    finally:
        feed.stop()


class FollowedView:
    """A TrustView kept current by a feed: for long-lived readers (replays in the query API, the
    archiver's snapshots, the verify agent), which ask at any time and in any thread."""

    def __init__(self, settings: Settings, region: str, principal: str = ADMIN, wait_s: float = 30.0) -> None:
        self.view = new_view(settings)
        self.feed = TrustFeed(settings.bootstrap(region), region, settings.region_names, settings, principal).start()
        self._lock = threading.Lock()
        if not self.feed.wait_caught_up(wait_s):
            log.warning("trust feed %s: not caught up within %.0f s; replays may judge keys untrusted", region, wait_s)

    def current(self) -> TrustView:
        if self.feed.pending():
            with self._lock:
                self.view.add_all(self.feed.drain())
        return self.view


_followed: dict[tuple[str, str], FollowedView] = {}
_followed_lock = threading.Lock()


def followed_view(settings: Settings, region: str | None = None, principal: str = ADMIN) -> FollowedView:
    """One followed view per process and region (a feed thread each, started on first use), read
    as `principal` (a worker passes its role's)."""
    region = region or settings.region
    key = (settings.bootstrap(region), str(settings.home))
    with _followed_lock:
        fv = _followed.get(key)
        if fv is None:
            fv = _followed[key] = FollowedView(settings, region, principal)
        return fv


def publish(settings: Settings, records: Iterable[TrustRecord], region: str | None = None, timeout: float = 30.0) -> int:
    """Write records to a region's `jarvis.trust` (MirrorMaker takes them everywhere else); returns
    how many were acknowledged. Raises if Kafka refused any."""
    # As the operator: only an admin (the CLI, the stack, a development Client holding the home's
    # admin key) writes trust records.
    producer = Producer({**client_conf(settings.bootstrap(region or settings.region), ADMIN, settings), "acks": "all"})
    errors: list[str] = []
    n = 0

    def done(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for rec in records:
        producer.produce(topics.TRUST, key=rec.kafka_key, value=encode_trust(rec), on_delivery=done)
        n += 1
    left = producer.flush(timeout)
    if left or errors:
        raise KafkaException(f"trust records not written to {topics.TRUST}: {errors[:3] or f'{left} unacknowledged'}")
    return n
