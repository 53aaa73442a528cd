"""What the pipeline decided about operations the SDK sent: accepted (with their dots) or rejected
(with every reason); for bounded-counter decrements and transfers, whether the origin region's fold
applied them; for workflow transitions, whether the fold applied them.

The SDK's delivery reports give each sent batch's ingress partition and offset. The verifier answers
for that position on two topics: a VerifiedBatch on jarvis.ops (same partition, its ingress offset
and the indexes it accepted) and a RejectedOperation on jarvis.ops.rejected per rejected operation
(ingress topic, partition, offset, index; no index: the whole message). A bounded counter's
decrement or transfer that the verifier accepted is decided by its origin region's fold, in log
order, against that region's rights: the fold writes one FoldDecisions record per message to
jarvis.ops.decided (same partition number, the message's ingress position, every judged index
accepted or refused with its reason) while it folds the message. That record, not the absence of a
refusal, is what makes an acceptance final: the refusal in jarvis.ops.rejected may be read long
after the object's folded state shows the operation (a reader of that topic catching up, the fold's
producer under load), and a verdict that guessed from a grace period once reported 1,375
reservations accepted for 1,000 sold. A client reads all of it with one `VerdictReader`: a consumer
assigned (no group joined) to every partition of the three topics from their ends as they were
before its first batch was sent, read by a thread for as long as the client lives, so a verdict
costs no connection, lookup or positioning. `await_verdicts` is the one-shot form for a caller
without a reader (a consumer positioned by time a little before the batches were sent).

A workflow transition the verifier accepts may still not apply: the fold replays each object's
transitions in timestamp order and skips those the definition does not allow from the state then
(kept in the history as `"applied": false`). That is decided only by the folded state, so it is read
from the region's query API once the verdict is in; it reflects the transitions folded at that
moment (a concurrent transition with an earlier timestamp arriving later can still change it).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.config import Settings
from jarvis.verdicts import (
    CLOCK_SLACK_MS,
    Judgement,
    SentBatch,
    Tally,
    Verdict,
    VerdictBook,
    VerdictTimeout,
    judgements,
    timeout_error,
)

TOPICS = (topics.OPS, topics.REJECTED, topics.DECIDED)


class VerdictReader:
    """The verdicts of one client's batches, read as they come by one consumer for the client's life.

    Created before the client's first tracked batch is sent, it is assigned (no consumer group) every
    partition of jarvis.ops, jarvis.ops.rejected and jarvis.ops.decided from their ends as they were
    then, so every later verdict is read, and a thread reads them. A verdict read before anyone
    waits for its batch (the verifier can answer before the producer's delivery report is handled)
    is kept in a bounded buffer by batch position; a batch whose words may have left that buffer,
    or that was sent before the reader started, is judged by `await_verdicts` instead."""

    def __init__(
        self,
        bootstrap: str,
        region: str,
        *,
        principal: str = "producer",
        settings: Settings | None = None,
        early_limit: int = 20_000,
    ) -> None:
        self.bootstrap, self.region, self.principal, self.settings = bootstrap, region, principal, settings
        self.started_ms = int(time.time() * 1000)
        self._consumer = Consumer(
            {
                **client_conf(bootstrap, principal, settings),
                "group.id": f"verdicts-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "fetch.error.backoff.ms": 50,
            }
        )
        try:
            md = self._consumer.list_topics(timeout=10).topics
            where = [(t, p) for t in TOPICS if t in md for p in sorted(md[t].partitions)]
            self._consumer.assign(_ends(self._consumer, where))
        except (KafkaException, KeyError) as e:
            self._consumer.close()
            raise VerdictTimeout(f"cannot read verdicts from {bootstrap}: {e}", []) from e
        self._cond = threading.Condition()
        self._book = VerdictBook(region, self.started_ms, early_limit)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"jarvis-verdicts-{region}", daemon=True)
        self._thread.start()

    def wait(self, batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        """The verdict on every operation of `batches` (all delivered), by op id, as `await_verdicts`."""
        if len({(b.partition, b.offset) for b in batches}) != len(batches) or any(
            b.offset < 0 for b in batches
        ):
            raise ValueError("every batch needs its own ingress offset (from a successful delivery report)")
        deadline = time.monotonic() + timeout
        verdicts: dict[str, Verdict] = {}
        with self._cond:
            mine, late = self._book.expect(batches)
            try:
                while not all(t.done() for t in mine.values()):
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        err = timeout_error(self.region, timeout, mine)
                        err.missing += [op for b in late for op in b.op_ids]  # not looked for yet
                        raise err
                    self._cond.wait(left)
            finally:
                self._book.forget(mine)
        for t in mine.values():
            verdicts.update(t.verdicts())
        if late:
            left = max(0.1, deadline - time.monotonic())
            try:
                verdicts.update(
                    await_verdicts(
                        self.bootstrap, self.region, late, left, principal=self.principal, settings=self.settings
                    )
                )
            except VerdictTimeout as e:
                e.found = {**verdicts, **e.found}  # the caller keeps what this reader read too
                raise
        return {op: verdicts[op] for b in batches for op in b.op_ids if op in verdicts}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._consumer.close()

    def _run(self) -> None:
        while not self._closed:
            try:
                first = self._consumer.poll(0.2)
                msgs = (
                    [first, *self._consumer.consume(num_messages=500, timeout=0)] if first is not None else []
                )
            except (KafkaException, RuntimeError):  # closed under us, or a fatal client error
                if self._closed:
                    return
                time.sleep(0.2)
                continue
            if msgs:
                self._dispatch(msgs)

    def _dispatch(self, msgs: list[Any]) -> None:
        words: list[tuple[int, Judgement]] = []
        for msg in msgs:
            if msg.error():
                continue  # partition EOF and the like; a broker error shows as a waiter's timeout
            ts = msg.timestamp()[1]
            words += [(ts, w) for w in judgements(msg.topic(), msg.value() or b"", self.region)]
        if not words:
            return
        with self._cond:
            self._book.take(words)
            self._cond.notify_all()


def await_verdicts(
    bootstrap: str,
    region: str,
    batches: list[SentBatch],
    timeout: float,
    *,
    principal: str = "producer",
    settings: Settings | None = None,
) -> dict[str, Verdict]:
    """The verdict on every operation of `batches` (all delivered), by op id: the verifier's, and for
    the indexes in a batch's `judged`, the origin fold's decision (jarvis.ops.decided). One-shot: a
    consumer positioned by time a little before the earliest batch was sent, closed after."""
    pending = {(b.partition, b.offset): b for b in batches}
    if len(pending) != len(batches) or any(b.offset < 0 for b in batches):
        raise ValueError("every batch needs its own ingress offset (from a successful delivery report)")
    tally = {key: Tally(b) for key, b in pending.items()}
    verdicts: dict[str, Verdict] = {}
    if not batches:
        return verdicts
    consumer = Consumer(
        {
            **client_conf(bootstrap, principal, settings),
            "group.id": f"verdicts-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        since = min(b.sent_ms for b in batches) - CLOCK_SLACK_MS
        parts = sorted({b.partition for b in batches})
        judged_parts = sorted({b.partition for b in batches if b.judged})
        n_rejected = len(consumer.list_topics(topics.REJECTED, timeout=10).topics[topics.REJECTED].partitions)
        consumer.assign(
            _positions(
                consumer,
                [(topics.OPS, p) for p in parts]
                + [(topics.REJECTED, p) for p in range(n_rejected)]
                + [(topics.DECIDED, p) for p in judged_parts],
                since,
            )
        )
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise timeout_error(region, timeout, tally)
            # The first record as soon as it comes, then what else is already here (consume() with a
            # timeout waits for all 500 or the whole timeout: half a second on every verdict).
            first = consumer.poll(min(0.5, left))
            for msg in [first, *consumer.consume(num_messages=500, timeout=0)] if first is not None else []:
                if msg.error():
                    continue  # partition EOF and the like; a broker error shows as the timeout
                for key, index, verdict in judgements(msg.topic(), msg.value() or b"", region, pending):
                    t = tally[key]
                    t.take(index, verdict, region)
                    if t.done():
                        pending.pop(key, None)
    finally:
        consumer.close()
    for t in tally.values():
        verdicts.update(t.verdicts())
    return verdicts


def _ends(consumer: Consumer, where: list[tuple[str, int]]) -> list[TopicPartition]:
    """Each (topic, partition) at its end as it is now (not OFFSET_END, which is resolved later:
    a record written in between would be skipped)."""
    ends = {(tp.topic, tp.partition): tp.offset for tp in _lookup(consumer, where, OFFSET_END)}
    for t, p in where:
        if ends.get((t, p), -1) < 0:  # not answered: ask the old way
            ends[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    return [TopicPartition(t, p, ends[(t, p)]) for t, p in where]


def _positions(consumer: Consumer, where: list[tuple[str, int]], since_ms: int) -> list[TopicPartition]:
    """Each (topic, partition)'s first offset at or after `since_ms`; its end (as it was before the
    lookup) when nothing is that recent yet, so a record written meanwhile is still read. Two batched
    offset lookups (timestamp -1 asks for the end), not two requests per partition: a verdict waits
    for them every time."""
    ends = {(tp.topic, tp.partition): tp.offset for tp in _ends(consumer, where)}
    at = {(tp.topic, tp.partition): tp.offset for tp in _lookup(consumer, where, since_ms) if tp.offset >= 0}
    return [TopicPartition(t, p, at.get((t, p), ends[(t, p)])) for t, p in where]


def _lookup(consumer: Consumer, where: list[tuple[str, int]], ts: int) -> list[TopicPartition]:
    try:
        return consumer.offsets_for_times([TopicPartition(t, p, ts) for t, p in where], timeout=10)
    except KafkaException:
        return []
