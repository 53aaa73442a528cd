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
reservations accepted for 1,000 sold. All of it is read with one throw-away consumer positioned by
time (offsets_for_times) a little before the batches were sent, so nothing older is read and no
consumer group is joined.

A workflow transition the verifier accepts may still not apply: the fold replays each object's
transitions in timestamp order and skips those the definition does not allow from the state then
(kept in the history as `"applied": false`). That is decided only by the folded state, so it is read
from the region's query API once the verdict is in; it reflects the transitions folded at that
moment (a concurrent transition with an earlier timestamp arriving later can still change it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.codec import CodecError, decode, decode_rejected
from jarvis.codec.decisions import decode_decisions
from jarvis.config import Settings
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
    # Indexes of bounded-counter decrements and transfers: their verdict is the origin fold's.
    judged: frozenset[int] = frozenset()


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
    bootstrap: str,
    region: str,
    batches: list[SentBatch],
    timeout: float,
    *,
    principal: str = "producer",
    settings: Settings | None = None,
) -> dict[str, Verdict]:
    """The verdict on every operation of `batches` (all delivered), by op id: the verifier's, and for
    the indexes in a batch's `judged`, the origin fold's decision (jarvis.ops.decided)."""
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
                missing = [op for key in pending for op in tally[key].missing()]
                where = ", ".join(f"{region}/{p}/{o}" for p, o in list(pending)[:5])
                raise VerdictTimeout(
                    f"no verdict after {timeout:g} s for {len(missing)} operation(s) in {len(pending)} batch(es) "
                    f"at ingress {where}: is the verifier (and, for bounded counters, the fold) of {region} "
                    "running and keeping up?",
                    missing,
                )
            # The first record as soon as it comes, then what else is already here (consume() with a
            # timeout waits for all 500 or the whole timeout: half a second on every verdict).
            first = consumer.poll(min(0.5, left))
            for msg in [first, *consumer.consume(num_messages=500, timeout=0)] if first is not None else []:
                if msg.error():
                    continue  # partition EOF and the like; a broker error shows as the timeout
                for key, index, verdict in _judged(msg.topic(), msg.value() or b"", region, pending):
                    t = tally[key]
                    t.take(index, verdict, region)
                    if t.done():
                        pending.pop(key, None)
    finally:
        consumer.close()
    for t in tally.values():
        verdicts.update(t.verdicts())
    return verdicts


# What one record says about operations of a batch: verifier accepted (dots given), rejected (by the
# verifier or the fold), or the origin fold decided (applied or not, with its reason).
VERIFIED, REJECTED, APPLIED, REFUSED = "verified", "rejected", "applied", "refused"


class Tally:
    """The verdicts on one sent batch as records come in (any order, duplicates included).

    An operation not in `judged` is final on the verifier's acceptance or on a rejection. A judged one
    (a bounded-counter decrement or transfer) is final only on its origin fold's decision or on a
    rejection: the verifier's acceptance only says the fold will decide. The first final word on an
    operation is kept (a fold that folds a message again after a crash may publish it twice)."""

    __slots__ = ("batch", "final", "verified")

    def __init__(self, batch: SentBatch) -> None:
        self.batch = batch
        self.final: dict[int, Verdict] = {}
        self.verified: set[int] = set()

    def take(self, index: int | None, word: tuple[str, list[str]], region: str) -> None:
        b = self.batch
        what, reasons = word
        for i in range(len(b.op_ids)) if index is None else (index,):
            if not 0 <= i < len(b.op_ids) or i in self.final:
                continue
            dot = (region, b.partition, b.offset, i)
            if what == REJECTED:
                self.final[i] = Verdict(b.op_ids[i], b.object_ids[i], False, list(reasons))
            elif what == VERIFIED:
                if i in b.judged:
                    self.verified.add(i)
                else:
                    self.final[i] = Verdict(b.op_ids[i], b.object_ids[i], True, [], dot)
            elif i in b.judged:  # APPLIED or REFUSED: the fold decides only what the verifier accepted
                self.final[i] = Verdict(
                    b.op_ids[i], b.object_ids[i], True, list(reasons), dot, what == APPLIED
                )

    def done(self) -> bool:
        return len(self.final) == len(self.batch.op_ids)

    def missing(self) -> list[str]:
        return [op for i, op in enumerate(self.batch.op_ids) if i not in self.final]

    def verdicts(self) -> dict[str, Verdict]:
        return {op: self.final[i] for i, op in enumerate(self.batch.op_ids) if i in self.final}


def _positions(consumer: Consumer, where: list[tuple[str, int]], since_ms: int) -> list[TopicPartition]:
    """Each (topic, partition)'s first offset at or after `since_ms`; its end (as it was before the
    lookup) when nothing is that recent yet, so a record written meanwhile is still read. Two batched
    offset lookups (timestamp -1 asks for the end), not two requests per partition: a verdict waits
    for them every time."""
    ends = {(tp.topic, tp.partition): tp.offset for tp in _lookup(consumer, where, OFFSET_END)}
    for t, p in where:
        if ends.get((t, p), -1) < 0:  # not answered: ask the old way
            ends[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    at = {(tp.topic, tp.partition): tp.offset for tp in _lookup(consumer, where, since_ms) if tp.offset >= 0}
    return [TopicPartition(t, p, at.get((t, p), ends[(t, p)])) for t, p in where]


def _lookup(consumer: Consumer, where: list[tuple[str, int]], ts: int) -> list[TopicPartition]:
    try:
        return consumer.offsets_for_times([TopicPartition(t, p, ts) for t, p in where], timeout=10)
    except KafkaException:
        return []


Judgement = tuple[tuple[int, int], int | None, tuple[str, list[str]]]


def _judged(
    topic: str, value: bytes, region: str, pending: dict[tuple[int, int], SentBatch]
) -> list[Judgement]:
    """The words one record says on pending batches: (batch key, op index or None for all,
    (VERIFIED | REJECTED | APPLIED | REFUSED, reasons))."""
    try:
        if topic == topics.REJECTED:
            rej = decode_rejected(value)
            key = (rej.partition, rej.offset)
            if rej.topic != topics.INGRESS or rej.region != region or key not in pending:
                return []
            return [(key, rej.index, (REJECTED, rej.reasons))]
        if topic == topics.DECIDED:
            d = decode_decisions(value)
            key = (d.partition, d.offset)
            if d.region != region or key not in pending:
                return []
            return [(key, i, (APPLIED, [])) for i in d.accepted] + [
                (key, i, (REFUSED, [why])) for i, why in d.refused.items()
            ]
        name, r = decode(value)
    except CodecError:
        return []  # another writer's record: not ours to judge
    if not name.endswith("VerifiedBatch") or r.get("origin_region") != region:
        return []
    key = (r.get("partition"), r.get("offset"))
    if key not in pending:
        return []
    return [(key, int(i), (VERIFIED, [])) for i in r.get("indexes") or []]  # type: ignore[misc]


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
