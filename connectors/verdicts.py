"""What the verifier decided about operations the SDK sent: accepted (with their dots) or rejected
(with every reason), and, for workflow transitions, whether the fold applied them.

The SDK's delivery reports give each sent batch's ingress partition and offset. The verifier answers
for that position on two topics: a VerifiedBatch on jarvis.ops (same partition, its ingress offset
and the indexes it accepted) and a RejectedOperation on jarvis.ops.rejected per rejected operation
(ingress topic, partition, offset, index; no index: the whole message). Both are read with a
throw-away consumer positioned by time (offsets_for_times) a little before the batches were sent,
so nothing older is read and no consumer group is joined.

A workflow transition the verifier accepts may still not apply: the fold replays each object's
transitions in timestamp order and skips those the definition does not allow from the state then
(kept in the history as `"applied": false`). That is decided only by the folded state, so it is read
from the region's query API once the verdict is in; it reflects the transitions folded at that
moment (a concurrent transition with an earlier timestamp arriving later can still change it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from jarvis import topics
from jarvis.codec import CodecError, decode, decode_rejected
from jarvis.errors import JarvisError

# Positioning starts this long before the earliest send: clocks of the producer and of the brokers
# that stamp the verifier's records may differ a little.
CLOCK_SLACK_MS = 5_000


class VerdictTimeout(JarvisError, TimeoutError):
    """Some operations had no verdict before the timeout; `missing` holds their op ids."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(slots=True)
class SentBatch:
    """One ingress message the SDK produced: where it landed and which operations it held."""

    partition: int
    op_ids: list[str]
    object_ids: list[str]
    offset: int = -1  # from the delivery report; -1 until then (or if it failed)
    sent_ms: int = 0


@dataclass(slots=True)
class Transition:
    """A workflow transition as sent: found again in the folded history by (timestamp, node)."""

    object_id: str
    hlc: int
    node_id: str
    to_state: str


@dataclass(slots=True)
class Verdict:
    op_id: str
    object_id: str
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    dot: tuple[str, int, int, int] | None = None  # region, ingress partition, offset, index
    applied: bool | None = None  # workflow transitions only: did the fold apply it

    @property
    def ok(self) -> bool:
        """Accepted and, for a transition, applied."""
        return self.accepted and self.applied is not False


@dataclass(slots=True)
class VerdictReport:
    region: str
    verdicts: dict[str, Verdict]  # by op id, in the order the operations were sent

    def of(self, op_id: str) -> Verdict:
        return self.verdicts[op_id]

    @property
    def accepted(self) -> list[Verdict]:
        return [v for v in self.verdicts.values() if v.ok]

    @property
    def refused(self) -> list[Verdict]:
        """Rejected by the verifier, or accepted transitions the fold did not apply."""
        return [v for v in self.verdicts.values() if not v.ok]

    def raise_if_refused(self) -> None:
        if self.refused:
            raise RejectedError(self)


class RejectedError(JarvisError, RuntimeError):
    """Some operations were rejected (or, transitions, not applied); `report` has every verdict."""

    def __init__(self, report: VerdictReport) -> None:
        self.report = report
        bad = report.refused
        first = bad[0]
        super().__init__(
            f"{len(bad)} of {len(report.verdicts)} operation(s) refused in {report.region}; first: "
            f"{first.object_id} ({first.op_id}): {'; '.join(first.reasons)}"
        )


def await_verdicts(
    bootstrap: str, region: str, batches: list[SentBatch], timeout: float
) -> dict[str, Verdict]:
    """The verifier's verdict on every operation of `batches` (all delivered), by op id."""
    pending = {(b.partition, b.offset): b for b in batches}
    if len(pending) != len(batches) or any(b.offset < 0 for b in batches):
        raise ValueError("every batch needs its own ingress offset (from a successful delivery report)")
    decided: dict[tuple[int, int], dict[int, Verdict]] = {key: {} for key in pending}
    verdicts: dict[str, Verdict] = {}
    if not batches:
        return verdicts
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verdicts-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        since = min(b.sent_ms for b in batches) - CLOCK_SLACK_MS
        ops_parts = sorted({b.partition for b in batches})
        n_rejected = len(consumer.list_topics(topics.REJECTED, timeout=10).topics[topics.REJECTED].partitions)
        consumer.assign(
            _positions(consumer, topics.OPS, ops_parts, since)
            + _positions(consumer, topics.REJECTED, range(n_rejected), since)
        )
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                missing = [
                    op
                    for b in pending.values()
                    for i, op in enumerate(b.op_ids)
                    if i not in decided[(b.partition, b.offset)]
                ]
                where = ", ".join(f"{region}/{p}/{o}" for p, o in list(pending)[:5])
                raise VerdictTimeout(
                    f"no verdict after {timeout:g} s for {len(missing)} operation(s) in {len(pending)} batch(es) "
                    f"at ingress {where}: is the verifier of {region} running and keeping up?",
                    missing,
                )
            msg = consumer.poll(min(0.5, left))
            if msg is None:
                continue
            if msg.error():
                continue  # partition EOF and the like; a broker error shows as the timeout
            for key, index, verdict in _judged(msg.topic(), msg.value() or b"", region, pending):
                batch = pending.get(key)
                if batch is None:
                    # Decided by an earlier record: the fold's refusal of a bounded-counter decrement
                    # (under the same ingress position) can be read before the verifier's acceptance.
                    continue
                targets = range(len(batch.op_ids)) if index is None else [index]
                for i in targets:
                    if 0 <= i < len(batch.op_ids) and i not in decided[key]:
                        decided[key][i] = Verdict(
                            batch.op_ids[i], batch.object_ids[i], verdict[0], list(verdict[1]),
                            (region, key[0], key[1], i) if verdict[0] else None,
                        )  # fmt: skip
                if len(decided[key]) == len(batch.op_ids):
                    del pending[key]
    finally:
        consumer.close()
    for b in batches:
        got = decided[(b.partition, b.offset)]
        for i, op_id in enumerate(b.op_ids):
            verdicts[op_id] = got[i]
    return verdicts


def _positions(
    consumer: Consumer, topic: str, partitions: Iterable[int], since_ms: int
) -> list[TopicPartition]:
    """Each partition's first offset at or after `since_ms`; its end (as it was before the lookup)
    when nothing is that recent yet, so a record written meanwhile is still read."""
    parts = list(partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in parts], timeout=10)
    except KafkaException:
        found = []
    at = {tp.partition: tp.offset for tp in found if tp.offset >= 0}
    return [TopicPartition(topic, p, at.get(p, ends[p])) for p in parts]


Judgement = tuple[tuple[int, int], int | None, tuple[bool, list[str]]]


def _judged(
    topic: str, value: bytes, region: str, pending: dict[tuple[int, int], SentBatch]
) -> list[Judgement]:
    """The verdicts one record gives on pending batches: (batch key, op index or None for all,
    (accepted, reasons))."""
    try:
        if topic == topics.REJECTED:
            rej = decode_rejected(value)
            key = (rej.partition, rej.offset)
            if rej.topic != topics.INGRESS or rej.region != region or key not in pending:
                return []
            return [(key, rej.index, (False, rej.reasons))]
        name, r = decode(value)
    except CodecError:
        return []  # another writer's record: not ours to judge
    if not name.endswith("VerifiedBatch") or r.get("origin_region") != region:
        return []
    key = (r.get("partition"), r.get("offset"))
    if key not in pending:
        return []
    return [(key, int(i), (True, [])) for i in r.get("indexes") or []]  # type: ignore[misc]


def transition_outcomes(
    read: Callable[[str], dict[str, Any] | None],
    transitions: dict[str, Transition],
    verdicts: dict[str, Verdict],
    timeout: float,
) -> None:
    """Set `applied` (and a reason when not) on the verdicts of accepted transitions, from the
    folded history the query API serves (`read(object_id)`), waiting until each is folded."""
    todo = {op: t for op, t in transitions.items() if op in verdicts and verdicts[op].accepted}
    deadline = time.monotonic() + timeout
    while todo:
        for object_id in sorted({t.object_id for t in todo.values()}):
            try:
                view = read(object_id)
            except OSError:  # the query API restarting or recovering (503): asked again below
                view = None
            history = ((view or {}).get("value") or {}).get("history") or []
            found = {(h.get("timestamp"), h.get("node")): h for h in history}
            for op_id, t in list(todo.items()):
                if t.object_id != object_id:
                    continue
                h = found.get((t.hlc, t.node_id))
                if h is None:
                    continue
                v = verdicts[op_id]
                v.applied = bool(h.get("applied"))
                if not v.applied:
                    v.reasons.append(
                        f"transition not applied: {h.get('from')} -> {t.to_state} is not allowed from "
                        f"{h.get('from')} (or its guard failed) when replayed in timestamp order"
                    )
                del todo[op_id]
        if not todo:
            return
        if time.monotonic() >= deadline:
            raise VerdictTimeout(
                f"{len(todo)} accepted transition(s) not folded after {timeout:g} s "
                f"(e.g. {next(iter(todo.values())).object_id}): is the fold running?",
                list(todo),
            )
        time.sleep(0.2)


# After an object's context covers an operation, how long a refusal of it may still be on its way
# to jarvis.ops.rejected: the fold sends the record while folding the message, before it settles.
DECISION_GRACE_S = 0.03


@dataclass(slots=True)
class Decision:
    """A bounded-counter decrement or transfer the verifier accepted: the fold of its origin decides."""

    op_id: str
    dot: tuple[str, int, int, int]  # region, ingress partition, offset, index


def fold_decisions(
    bootstrap: str,
    region: str,
    read: Callable[[str], dict[str, Any] | None],
    decisions: list[Decision],
    verdicts: dict[str, Verdict],
    since_ms: int,
    timeout: float,
) -> None:
    """Mark the accepted operations of `decisions` the fold refused (jarvis.ops.rejected, under their
    ingress position, streams/fold.py) as not applied, with the fold's reason; the others are
    applied once their object's folded context covers their dot and no refusal followed."""
    pending = {(d.dot[1], d.dot[2], d.dot[3]): d for d in decisions}
    covered: dict[tuple[int, int, int], float] = {}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verdicts-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        n = len(consumer.list_topics(topics.REJECTED, timeout=10).topics[topics.REJECTED].partitions)
        consumer.assign(_positions(consumer, topics.REJECTED, range(n), since_ms - CLOCK_SLACK_MS))
        deadline = time.monotonic() + timeout
        while pending:
            for msg in consumer.consume(num_messages=500, timeout=0.01):
                if msg.error():
                    continue
                try:
                    rej = decode_rejected(msg.value() or b"")
                except CodecError:
                    continue
                key = (rej.partition, rej.offset, rej.index if rej.index is not None else -1)
                if rej.topic != topics.INGRESS or rej.region != region or key not in pending:
                    continue
                v = verdicts[pending.pop(key).op_id]
                v.applied = False
                v.reasons.extend(rej.reasons)
                covered.pop(key, None)
            now = time.monotonic()
            contexts: dict[str, dict[str, Any]] = {}  # one read per object and round
            for key, d in list(pending.items()):
                if key in covered:
                    if now - covered[key] >= DECISION_GRACE_S:
                        verdicts[d.op_id].applied = True
                        del pending[key]
                    continue
                oid = verdicts[d.op_id].object_id
                if oid not in contexts:
                    try:
                        contexts[oid] = (read(oid) or {}).get("context") or {}
                    except OSError:
                        contexts[oid] = {}
                last = contexts[oid].get(f"{region}/{key[0]}")
                if last is not None and tuple(last) >= (key[1], key[2]):
                    covered[key] = now
            if pending and now >= deadline:
                raise VerdictTimeout(
                    f"{len(pending)} bounded-counter operation(s) not decided after {timeout:g} s: "
                    f"is the fold of {region} running?",
                    [d.op_id for d in pending.values()],
                )
    finally:
        consumer.close()
