"""What the verifier writes for each verdict, and its judge feeding the gate every region's
acceptances first (no Kafka: the gate is real, the feed a queue of SeenRecords)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from jarvis import topics, tracecontext
from jarvis.codec import decode_rejected, decode_verified
from jarvis.codec.seen import SeenRecord, decode_seen
from jarvis.gate import Gate
from jarvis.security.keys import Signer
from jarvis.security.seen_batches import Acceptance, SeenBatches, batch_key
from pipelines.loader import pipelines
from streams.verifier import Judge, outputs
from tests.trust_helpers import view_trusting
from tests.unit.test_gate import NOW_MS, op, signed, signer  # noqa: F401 - signer is a fixture


@pytest.fixture
def gate(signer: Signer, tmp_path: Path) -> Gate:  # noqa: F811
    return Gate("eu", pipelines(), view_trusting(signer), seen=SeenBatches())


class Feed:
    """The part of connectors.seen_feed.SeenFeed the judge uses: records already read, caught up."""

    topics = [topics.SEEN]

    def __init__(self, records: list[SeenRecord]) -> None:
        self.records = records
        self.caught_up = threading.Event()
        self.caught_up.set()

    def drain(self):  # noqa: ANN201
        while self.records:
            yield self.records.pop(0)


def test_an_accepted_batch_is_noted_before_it_is_forwarded(gate: Gate, signer: Signer) -> None:  # noqa: F811
    data = signed([op(), op("nope:1")], signer)
    result = gate.check(data, 3, 17, NOW_MS)
    out = outputs(result, "eu", topics.INGRESS, 3, 17, b"ctr:1", data)
    assert [o.topic for o in out] == [topics.SEEN, topics.OPS, topics.REJECTED]
    note = decode_seen(out[0].value)
    assert note.where == Acceptance("eu", 3, 17) and out[0].key == note.key == result.seen_key
    verified = decode_verified(out[1].value)
    assert (out[1].partition, out[1].key, [d.index for d in verified.dots]) == (3, b"ctr:1", [0])
    rejected = decode_rejected(out[2].value)
    assert out[2].key == b"nope:1" and rejected.index == 1 and "unknown object prefix" in rejected.reasons[0]


def test_the_verified_and_rejected_records_carry_the_verifiers_span_of_the_trace(gate: Gate, signer: Signer) -> None:  # noqa: F811
    data = signed([op(), op("nope:1")], signer)
    span = tracecontext.new_root().child()
    out = outputs(gate.check(data, 3, 17, NOW_MS), "eu", topics.INGRESS, 3, 17, b"ctr:1", data, span)
    by_topic = {o.topic: dict(o.headers) for o in out}
    assert by_topic[topics.SEEN] == {}  # a note of the batch, not part of any operation's story
    assert tracecontext.parse(by_topic[topics.OPS][tracecontext.HEADER]) == span
    assert tracecontext.parse(by_topic[topics.REJECTED][tracecontext.HEADER]) == span
    untraced = outputs(gate.check(data, 3, 18, NOW_MS), "eu", topics.INGRESS, 3, 18, b"ctr:1", data)
    assert all(o.headers == () for o in untraced)


def test_an_undecodable_message_is_one_rejection_keyed_by_where_it_was_read(gate: Gate) -> None:
    result = gate.check(b"garbage", 2, 5, NOW_MS)
    out = outputs(result, "eu", topics.INGRESS, 2, 5, b"k", b"garbage")
    assert [(o.topic, o.key) for o in out] == [(topics.REJECTED, b"raw:jarvis.ops.ingress:2:5")]
    assert decode_rejected(out[0].value).original == b"garbage"


def test_the_judge_learns_other_regions_acceptances_before_judging(gate: Gate, signer: Signer) -> None:  # noqa: F811
    data = signed([op()], signer)
    key = batch_key(gate.check(data, 0, 0, NOW_MS).batch.op_digests)
    fresh = Gate("eu", pipelines(), gate.trust, seen=SeenBatches())
    note = SeenRecord(key, "b", Acceptance("us", 0, 9), NOW_MS + 86_400_000)
    judge = Judge("eu", fresh, Feed([note]))  # type: ignore[arg-type]
    result = asyncio.run(judge.judge(data, 0, 1))
    assert result.accepted == [] and "accepted at us/0/9" in result.rejected[0].reasons[0]
    out = outputs(result, "eu", topics.INGRESS, 0, 1, b"ctr:1", data)
    assert [o.topic for o in out] == [topics.REJECTED]  # a duplicate is neither noted nor forwarded


def test_the_judge_waits_until_the_feed_has_read_what_it_held(gate: Gate, signer: Signer) -> None:  # noqa: F811
    feed = Feed([])
    feed.caught_up.clear()
    judge = Judge("eu", gate, feed)  # type: ignore[arg-type]

    async def run() -> bool:
        task = asyncio.create_task(judge.judge(signed([op()], signer), 0, 0))
        await asyncio.sleep(0.2)
        waited = not task.done()
        feed.caught_up.set()
        await task
        return waited

    assert asyncio.run(run())


class TrustFeedStandIn:
    """The part of connectors.trust_feed.TrustFeed the judge uses; `sync` hands over what a read
    of the trust topics to their end would find (here: records held back until then)."""

    topics = [topics.TRUST]

    def __init__(self, on_sync: list) -> None:
        self.on_sync = on_sync
        self.queue: list = []
        self.caught_up = threading.Event()
        self.caught_up.set()
        self.synced_ms = 0
        self.syncs = 0

    def pending(self) -> bool:
        return bool(self.queue)

    def drain(self):  # noqa: ANN201
        while self.queue:
            yield self.queue.pop(0)

    def sync(self, timeout: float) -> bool:
        self.syncs += 1
        self.queue += self.on_sync
        self.on_sync = []
        self.synced_ms = NOW_MS + 1
        return True


def test_a_grant_written_just_before_the_batch_is_read_before_the_batch_is_refused(signer: Signer) -> None:  # noqa: F811
    from jarvis.security.trust import TrustView, make_grant
    from tests.trust_helpers import ADMIN

    gate = Gate("eu", pipelines(), TrustView([ADMIN.public_key()]), seen=SeenBatches())
    grant = make_grant(ADMIN, signer.node_id, signer.public, ("ctr:*",), issued_ms=1)
    trust = TrustFeedStandIn([grant])
    judge = Judge("eu", gate, Feed([]), trust)  # type: ignore[arg-type]
    result = asyncio.run(judge.judge(signed([op()], signer), 0, 1, produced_ms=NOW_MS))
    assert result.accepted == [0] and trust.syncs == 1
    # Produced before the last sync began: the sync already covered it, so no second read.
    stranger = Gate("eu", pipelines(), TrustView([ADMIN.public_key()]), seen=SeenBatches())
    judge = Judge("eu", stranger, Feed([]), trust)  # type: ignore[arg-type]
    refused = asyncio.run(judge.judge(signed([op()], signer), 0, 2, produced_ms=NOW_MS))
    assert refused.untrusted_key and trust.syncs == 1
    assert refused.rejected[0].reasons == [f"key {signer.key_id} of node gate-test is not trusted in eu"]
