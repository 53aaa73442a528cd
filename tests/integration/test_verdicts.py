"""The SDK's verdict reader (connectors/verdicts.py VerdictReader) on the real stack: one consumer for
the client's life answers verdicts read before anyone asked, verdicts asked for from several threads,
and, when its buffer overflowed, still the right verdict through the one-shot reader."""

from __future__ import annotations

import time
import uuid

import pytest

from connectors.sdk import Client
from connectors.verdicts import VerdictReader
from jarvis.verdicts import SentBatch

pytestmark = pytest.mark.integration


def test_one_reader_serves_every_verdict_of_a_client(stack) -> None:
    run = uuid.uuid4().hex[:8]
    with Client(region="eu", node_id="reader-test", track_verdicts=True, dev_trust=True) as c:
        ok = c.counter(f"ctr:{run}").increment(2)
        c.flush()
        reader = c._reader
        assert reader is not None  # made with the client, before its first batch
        time.sleep(2)  # the verdict is read before anyone asks: it waits in the reader's buffer
        assert c.verdicts(30).of(ok).ok
        bad = c.counter(f"ctr:{run}").increment(-1)
        futures = [c.verdicts_async(30)]
        good = [c.counter(f"ctr:{run}-{i}").increment(1) for i in range(3)]
        futures.append(c.verdicts_async(30))
        first, second = (f.result(60) for f in futures)
        assert not first.of(bad).accepted and "non-negative" in " ".join(first.of(bad).reasons)
        assert all(second.of(op).ok for op in good)
        assert c._reader is reader  # the same consumer all along
    assert c._reader is None  # closed with the client


def test_a_batch_whose_words_left_the_buffer_is_judged_by_the_one_shot_reader(stack) -> None:
    run = uuid.uuid4().hex[:8]
    s = stack.settings
    with Client(region="eu", node_id="reader-test", track_verdicts=True, dev_trust=True) as c:
        reader = VerdictReader(c.bootstrap, "eu", settings=s, early_limit=1)
        try:
            for i in range(20):  # batches on several partitions: several keys, a buffer of 1
                c.counter(f"ctr:{run}-{i}").increment(1)
            c.flush()
            sent = c._take_sent(30)[0]
            assert len(sent) >= 2
            time.sleep(2)  # every verdict read, all but one dropped from the buffer
            verdicts = reader.wait(sent, 30)
            assert len(verdicts) == 20 and all(v.ok for v in verdicts.values())
            assert reader._book.evicted_ms > 0
        finally:
            reader.close()


def test_a_batch_sent_before_the_reader_started_is_still_judged(stack) -> None:
    run = uuid.uuid4().hex[:8]
    with Client(region="eu", node_id="reader-test", track_verdicts=True, dev_trust=True) as c:
        op = c.counter(f"ctr:{run}").increment(1)
        c.flush()
        [b] = c._take_sent(30)[0]
        time.sleep(1)
        late = VerdictReader(c.bootstrap, "eu", settings=stack.settings)
        try:
            assert late.wait([SentBatch(b.partition, b.op_ids, b.object_ids, b.offset, b.sent_ms)], 30)[op].ok
        finally:
            late.close()


def test_a_waiting_decrement_waits_for_its_own_verdict_and_leaves_the_others(stack) -> None:
    """decrement(wait=True) judges only the batch holding it: a write sent before it (here one that
    will be rejected) keeps its verdict for the next verdicts()."""
    run = uuid.uuid4().hex[:8]
    with Client(region="eu", node_id="reader-test", track_verdicts=True, dev_trust=True) as c:
        stock = c.bcounter(f"stock:{run}")
        stock.increment(5)
        c.flush(wait=True)
        bad = c.counter(f"ctr:{run}").increment(-1)  # refused by the verifier
        c.flush()
        v = stock.decrement(2, wait=True)
        assert v.ok and v.op_id != bad  # not a RejectedError for the other write
        later = c.verdicts(30)
        assert not later.of(bad).accepted and "non-negative" in " ".join(later.of(bad).reasons)
        assert not stock.decrement(9, wait=True).ok  # 3 left: refused by the fold, with its reason
