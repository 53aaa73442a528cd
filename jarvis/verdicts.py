"""Verdicts on operations a client sent, as the pipeline gives them, without Kafka: where a sent
batch landed (`SentBatch`), what one record of jarvis.ops, jarvis.ops.rejected or jarvis.ops.decided
says about it (`judgements`), the tally of those words per batch (`Tally`), and the final report.

connectors/verdicts.py reads the records; its docstring says which record is final for what.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from jarvis import topics
from jarvis.codec import CodecError, decode, decode_rejected
from jarvis.codec.decisions import decode_decisions
from jarvis.errors import JarvisError

# A verdict reader starts reading this long before the earliest send (clocks of the producer and of
# the brokers that stamp the verifier's records may differ a little), and a buffered word evicted
# this close to a batch's send may have been that batch's.
CLOCK_SLACK_MS = 5_000


class VerdictTimeout(JarvisError, TimeoutError):
    """Some operations had no verdict before the timeout; `missing` holds their op ids.

    What was read before it is kept, so a caller answers from it without reading again: `found`, the
    final verdicts by op id; `verified`, by op id, the missing operations the verifier accepted whose
    last word had not come (a bounded-counter decrement's or transfer's origin fold decision, a
    transition's application by the fold): accepted, with their dots, `applied` None.
    """

    def __init__(
        self,
        message: str,
        missing: list[str],
        found: dict[str, Verdict] | None = None,
        verified: dict[str, Verdict] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.found: dict[str, Verdict] = found or {}
        self.verified: dict[str, Verdict] = verified or {}


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

    def provisional(self, region: str) -> dict[str, Verdict]:
        """Judged operations the verifier accepted and their fold has not decided: accepted, with
        their dots, `applied` unknown."""
        b = self.batch
        return {
            b.op_ids[i]: Verdict(b.op_ids[i], b.object_ids[i], True, [], (region, b.partition, b.offset, i))
            for i in sorted(self.verified) if i not in self.final
        }  # fmt: skip


Judgement = tuple[tuple[int, int], int | None, tuple[str, list[str]]]


def judgements(
    topic: str, value: bytes, region: str, pending: Container[tuple[int, int]] | None = None
) -> list[Judgement]:
    """The words one record says on batches sent to `region`'s ingress (only the `pending` ones,
    by (partition, offset), when given): (batch key, op index or None for all, (VERIFIED | REJECTED |
    APPLIED | REFUSED, reasons))."""
    words: list[Judgement]
    try:
        if topic == topics.REJECTED:
            rej = decode_rejected(value)
            if rej.topic != topics.INGRESS or rej.region != region:
                return []
            key = (rej.partition, rej.offset)
            words = [(key, rej.index, (REJECTED, rej.reasons))]
        elif topic == topics.DECIDED:
            d = decode_decisions(value)
            if d.region != region:
                return []
            key = (d.partition, d.offset)
            words = [(key, i, (APPLIED, [])) for i in d.accepted]
            words += [(key, i, (REFUSED, [why])) for i, why in d.refused.items()]
        else:
            name, r = decode(value)
            if not name.endswith("VerifiedBatch") or r.get("origin_region") != region:
                return []
            key = (int(r["partition"]), int(r["offset"]))
            words = [(key, int(i), (VERIFIED, [])) for i in r.get("indexes") or []]
    except CodecError:
        return []  # another writer's record: not ours to judge
    return [] if pending is not None and key not in pending else words


Word = tuple[int, int | None, tuple[str, list[str]]]  # record timestamp (ms), op index, what it says
BatchKey = tuple[int, int]  # ingress (partition, offset)


class VerdictBook:
    """The tallies of awaited batches, fed by a reader of every verdict of the region.

    A word read before anyone awaits its batch (the verifier can answer before the producer's
    delivery report is handled) is kept, by batch, in a buffer of at most `early_limit` batches,
    oldest dropped first. A batch sent before the reader started (`started_ms`), or near a dropped
    word, may miss words: `expect` hands it back as late, for a reader that looks back in time."""

    def __init__(self, region: str, started_ms: int, early_limit: int = 20_000) -> None:
        self.region = region
        self.started_ms = started_ms
        self.early_limit = early_limit
        self.tallies: dict[BatchKey, Tally] = {}
        self.early: OrderedDict[BatchKey, list[Word]] = OrderedDict()
        self.evicted_ms = 0  # timestamp of the newest record whose words were dropped unclaimed

    def expect(self, batches: Iterable[SentBatch]) -> tuple[dict[BatchKey, Tally], list[SentBatch]]:
        """Await `batches`: their tallies (with the words already read), and those that are late."""
        mine: dict[BatchKey, Tally] = {}
        late: list[SentBatch] = []
        for b in batches:
            key = (b.partition, b.offset)
            words = self.early.pop(key, ())
            if b.sent_ms < self.started_ms or b.sent_ms - CLOCK_SLACK_MS <= self.evicted_ms:
                late.append(b)
                continue
            t = mine[key] = self.tallies[key] = Tally(b)
            for _, index, word in words:
                t.take(index, word, self.region)
        return mine, late

    def take(self, stamped: Iterable[tuple[int, Judgement]]) -> None:
        """Words read, each with its record's timestamp (ms)."""
        for ts, (key, index, word) in stamped:
            t = self.tallies.get(key)
            if t is not None:
                t.take(index, word, self.region)
                continue
            self.early.setdefault(key, []).append((ts, index, word))
            while len(self.early) > self.early_limit:
                _, dropped = self.early.popitem(last=False)
                self.evicted_ms = max(self.evicted_ms, *(w[0] for w in dropped))

    def forget(self, keys: Iterable[BatchKey]) -> None:
        for key in keys:
            self.tallies.pop(key, None)


def timeout_error(
    region: str, timeout: float, tallies: dict[BatchKey, Tally], found: dict[str, Verdict] | None = None
) -> VerdictTimeout:
    """What a caller learns when some of `tallies` are not done after `timeout` seconds: the op ids
    missing, and every verdict the tallies (and `found`, read elsewhere) hold."""
    missing = [op for t in tallies.values() if not t.done() for op in t.missing()]
    read = dict(found or {})
    verified: dict[str, Verdict] = {}
    for t in tallies.values():
        read.update(t.verdicts())
        verified.update(t.provisional(region))
    where = ", ".join(f"{region}/{p}/{o}" for (p, o), t in list(tallies.items())[:5] if not t.done())
    n = sum(not t.done() for t in tallies.values())
    return VerdictTimeout(
        f"no verdict after {timeout:g} s for {len(missing)} operation(s) in {n} batch(es) "
        f"at ingress {where}: is the verifier (and, for bounded counters, the fold) of {region} "
        "running and keeping up?",
        missing,
        read,
        verified,
    )


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
                {op: v for op, v in verdicts.items() if op not in todo},
                {op: verdicts[op] for op in todo},
            )
        time.sleep(0.2)
