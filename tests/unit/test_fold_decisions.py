"""The origin fold's verdicts on bounded-counter decrements and transfers (streams/fold.py, one
FoldDecisions record per message on jarvis.ops.decided) and how the SDK's verdicts read them
(jarvis/verdicts.py), without Kafka.

The defect these pin down: the SDK once reported a decrement accepted when the object's folded
context covered it and no refusal had been read within 30 ms. A refusal can be read much later than
that (the SDK's reader of jarvis.ops.rejected catching up from a few seconds back, the fold's
producer under load), and a refused decrement's dot is in the context as soon as any later
operation of its partition is folded: 1,375 reservations were reported accepted for 1,000 sold.
Now an acceptance is final only on the fold's own word."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from jarvis import topics
from jarvis.codec import CodecError, encode, encode_batch, encode_rejected, encode_verified
from jarvis.codec.decisions import FoldDecisions, decode_decisions, encode_decisions
from jarvis.crdt.bcounter_spec import decide_in
from jarvis.ops import Operation, OperationBatch, RejectedOperation
from jarvis.verdicts import APPLIED, REFUSED, REJECTED, VERIFIED, SentBatch, Tally, judgements
from pipelines.loader import pipelines
from streams.fold import FoldWorker
from streams.fold_state import FoldState
from tests.unit.test_fold_state import TableStandIn
from tests.unit.test_fold_worker import HLC, Consumer, event

OID = "bc:sku-1"


@pytest.fixture(autouse=True)
def eu_decides() -> Iterator[None]:
    decide_in("eu")
    yield
    decide_in(None)


def verified(offset: int, ops: list[tuple[str, dict[str, Any]]], region: str = "eu") -> bytes:
    """A jarvis.ops message: ingress partition 2, offset `offset`, bcounter operations of `region`."""
    batch_ops = [
        Operation(f"op-{offset}-{i}", OID, "bcounter", kind, args, "shop", region, HLC + offset * 10 + i)
        for i, (kind, args) in enumerate(ops)
    ]
    n = len(batch_ops)
    batch = OperationBatch(f"b-{offset}", "shop", "key", region, HLC, batch_ops, b"\x01" * 32 * n, b"\x02" * 64)
    return encode_verified(region, 2, offset, list(range(n)), [1.0] * n, encode_batch(batch))


class Fold:
    def __init__(self) -> None:
        self.state = FoldState("eu", TableStandIn(), pipelines(), cache=None)  # type: ignore[arg-type]
        self.rejected: list[bytes] = []
        self.decided: list[tuple[int, bytes]] = []

        async def done() -> asyncio.Future[None]:
            f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            f.set_result(None)
            return f

        async def send_rejected(key: bytes, value: bytes) -> asyncio.Future[None]:
            self.rejected.append(value)
            return await done()

        async def send_decided(partition: int, key: bytes, value: bytes) -> asyncio.Future[None]:
            self.decided.append((partition, value))
            return await done()

        async def restart() -> None:
            raise AssertionError("no restart expected")

        consumer = Consumer()
        self.worker = FoldWorker(
            self.state, lambda: consumer, send_rejected, restart, send_decided=send_decided
        )

    def run(self, *events: Any) -> None:
        async def go() -> None:
            for e in events:
                await self.worker.handle(e)

        asyncio.run(go())

    def decisions(self) -> list[FoldDecisions]:
        return [decode_decisions(v) for _, v in self.decided]


def test_one_record_per_message_names_every_decrement_and_transfer_accepted_or_refused() -> None:
    f = Fold()
    f.run(
        event(10, verified(10, [("increment", {"n": 3})])),
        event(11, verified(11, [("decrement", {"n": 2}), ("decrement", {"n": 2}), ("increment", {"n": 1}),
                                ("transfer", {"n": 1, "to_region": "us"})])),
    )  # fmt: skip
    [d] = f.decisions()  # the increment-only message is not decided: nothing to wait for
    assert f.decided[0][0] == 2  # on the ingress partition's number, where the SDK looks
    assert (d.region, d.partition, d.offset) == ("eu", 2, 11)
    assert d.accepted == [0, 3]
    assert d.refused == {1: f"fold cannot apply decrement to {OID}: insufficient rights in eu: holds 1, needs 2"}
    assert len(f.rejected) == 1  # the refusal is still in jarvis.ops.rejected for people and the console
    assert f.state.peek(OID).value.value() == 2  # type: ignore[union-attr]
    assert len(f.state.inflight) == 2  # the settle acks the message only once Kafka has both records


def test_a_message_folded_again_is_not_decided_again_and_other_regions_decrements_never() -> None:
    f = Fold()
    msg = verified(11, [("decrement", {"n": 5}), ("decrement", {"n": 1})])
    f.run(event(10, verified(10, [("increment", {"n": 3})])), event(11, msg))
    assert [(d.accepted, list(d.refused)) for d in f.decisions()] == [([1], [0])]

    async def again() -> None:  # a rebalance: the new owner reads the message once more
        await f.worker.on_revoked(None, set())
        await f.worker.on_assigned(None, set())
        await f.worker.handle(event(11, msg))

    asyncio.run(again())
    assert len(f.decided) == 1  # its operations are in the context (the refused one too, behind index 1)
    mirrored = Fold()
    mirrored.run(event(10, verified(10, [("decrement", {"n": 1})], region="us")))
    assert mirrored.decided == []  # us decides its own; eu learns the result from us's `decided`


def batch(n: int, judged: set[int]) -> SentBatch:
    return SentBatch(2, [f"op{i}" for i in range(n)], [OID] * n, 11, 0, frozenset(judged))


def test_a_judged_operation_the_verifier_accepted_is_not_accepted_until_the_fold_says_so() -> None:
    t = Tally(batch(3, {0, 1}))
    t.take(None, (VERIFIED, []), "eu")  # e.g. a VerifiedBatch record's indexes, all three
    assert t.missing() == ["op0", "op1"]  # however long no refusal comes: the old grace said accepted
    t.take(0, (APPLIED, []), "eu")
    t.take(1, (REFUSED, ["insufficient rights in eu: holds 0, needs 1"]), "eu")
    assert t.done()
    v = t.verdicts()
    assert v["op0"].ok and v["op0"].dot == ("eu", 2, 11, 0)
    assert not v["op1"].ok and v["op1"].reasons == ["insufficient rights in eu: holds 0, needs 1"]
    assert v["op2"].ok and v["op2"].applied is None  # not judged: the verifier's acceptance is final


def test_the_first_final_word_stays_and_a_rejection_needs_no_verifiers_acceptance() -> None:
    t = Tally(batch(2, {0, 1}))
    t.take(0, (APPLIED, []), "eu")
    t.take(0, (REFUSED, ["folded again after a crash"]), "eu")  # a second record for the message
    t.take(1, (REJECTED, ["signature does not verify"]), "eu")
    t.take(1, (APPLIED, []), "eu")
    v = t.verdicts()
    assert v["op0"].ok and not v["op1"].ok and v["op1"].reasons == ["signature does not verify"]
    t = Tally(batch(2, set()))
    t.take(5, (VERIFIED, []), "eu")  # an index outside the batch is nobody's
    assert not t.done()


def test_records_are_read_as_words_on_the_pending_batch_of_their_region_only() -> None:
    pending = {(2, 11): batch(3, {0, 1})}
    d = encode_decisions(FoldDecisions("eu", 2, 11, [0], {1: "insufficient rights in eu: holds 0, needs 1"}))
    assert judgements(topics.DECIDED, d, "eu", pending) == [
        ((2, 11), 0, (APPLIED, [])),
        ((2, 11), 1, (REFUSED, ["insufficient rights in eu: holds 0, needs 1"])),
    ]
    assert judgements(topics.DECIDED, d, "us", pending) == []  # another region's fold
    other = encode_decisions(FoldDecisions("eu", 2, 12, [0], {}))
    assert judgements(topics.DECIDED, other, "eu", pending) == []  # not a batch we sent
    assert judgements(topics.DECIDED, b"\x00garbage", "eu", pending) == []
    rej = RejectedOperation(b"", ["bad"], topics.INGRESS, 2, 11, 0, "eu", 2, "op2", OID)
    assert judgements(topics.REJECTED, encode_rejected(rej), "eu", pending) == [((2, 11), 2, (REJECTED, ["bad"]))]


def test_decisions_round_trip_and_a_record_whose_reasons_do_not_match_is_refused() -> None:
    d = FoldDecisions("eu", 2, 11, [0, 3], {1: "why", 2: "because"}, 123)
    assert decode_decisions(encode_decisions(d)) == d
    fields = {"region": "eu", "partition": 2, "offset": 11, "accepted": [], "refused": [1, 2]}
    bad = encode("FoldDecisions", {**fields, "reasons": ["only one"], "decided_at_ms": 1})
    with pytest.raises(CodecError, match="2 refused indexes but 1 reasons"):
        decode_decisions(bad)
