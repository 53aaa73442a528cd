"""The SDK's verdict reader's bookkeeping (jarvis/verdicts.py VerdictBook), without Kafka: words read
before their batch is awaited are kept, a batch that may have missed words is handed back as late,
and the buffer stays bounded whatever the region's traffic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.verdicts import (
    APPLIED,
    CLOCK_SLACK_MS,
    REFUSED,
    REJECTED,
    VERIFIED,
    SentBatch,
    Transition,
    Verdict,
    VerdictBook,
    VerdictTimeout,
    timeout_error,
    transition_outcomes,
)

T0 = 1_780_000_000_000


def batch(
    offset: int, n: int = 2, sent_ms: int = T0 + 1_000, judged: frozenset[int] = frozenset()
) -> SentBatch:
    return SentBatch(3, [f"op-{offset}-{i}" for i in range(n)], ["bc:x"] * n, offset, sent_ms, judged)


def test_words_read_before_the_batch_is_awaited_count() -> None:
    book = VerdictBook("eu", T0)
    book.take([(T0 + 1_010, ((3, 7), None, (VERIFIED, [])))])  # the verifier answered first
    mine, late = book.expect([batch(7)])
    assert late == [] and mine[(3, 7)].done()
    assert [v.accepted for v in mine[(3, 7)].verdicts().values()] == [True, True]
    assert book.early == {}


def test_words_read_while_awaited_go_to_the_tally_and_forget_drops_it() -> None:
    book = VerdictBook("eu", T0)
    mine, _ = book.expect([batch(8, judged=frozenset({1}))])
    book.take([(T0 + 1_010, ((3, 8), 0, (VERIFIED, []))), (T0 + 1_010, ((3, 8), 1, (VERIFIED, [])))])
    assert not mine[(3, 8)].done()  # index 1 waits for its fold's decision
    book.take([(T0 + 1_020, ((3, 8), 1, (APPLIED, [])))])
    assert mine[(3, 8)].done()
    book.forget(mine)
    book.take([(T0 + 1_030, ((3, 8), 0, (REJECTED, ["late duplicate"])))])
    assert book.tallies == {} and (3, 8) in book.early  # kept as an early word, bounded


def test_a_batch_sent_before_the_reader_started_is_late() -> None:
    book = VerdictBook("eu", T0)
    mine, late = book.expect([batch(1, sent_ms=T0 - 1), batch(2, sent_ms=T0)])
    assert [b.offset for b in late] == [1] and list(mine) == [(3, 2)]


def test_a_batch_near_an_evicted_word_is_late_even_with_words_buffered() -> None:
    book = VerdictBook("eu", T0, early_limit=2)
    book.take([(T0 + 5_000 + i, ((3, 100 + i), None, (VERIFIED, []))) for i in range(3)])
    assert list(book.early) == [(3, 101), (3, 102)] and book.evicted_ms == T0 + 5_000  # the dropped one
    mine, late = book.expect(
        [batch(101, sent_ms=T0 + 5_000), batch(200, sent_ms=T0 + 5_001 + CLOCK_SLACK_MS)]
    )
    assert [b.offset for b in late] == [101]  # some of its words may have been the evicted ones
    assert list(mine) == [(3, 200)]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 500)), max_size=300), st.integers(1, 50))
def test_the_early_buffer_never_holds_more_than_its_limit(keys: list[tuple[int, int]], limit: int) -> None:
    book = VerdictBook("eu", T0, early_limit=limit)
    for i, key in enumerate(keys):
        book.take([(T0 + i, (key, 0, (VERIFIED, [])))])
        assert len(book.early) <= limit
    dropped = len(set(keys)) > limit
    assert (book.evicted_ms > 0) == dropped or not keys


def test_the_timeout_names_only_what_is_missing() -> None:
    book = VerdictBook("eu", T0)
    mine, _ = book.expect([batch(5), batch(6)])
    book.take([(T0 + 1_100, ((3, 5), None, (VERIFIED, [])))])
    err = timeout_error("eu", 2.0, mine)
    assert err.missing == ["op-6-0", "op-6-1"]
    assert "2 operation(s) in 1 batch(es) at ingress eu/3/6" in str(err)


def test_the_timeout_carries_the_verdicts_it_read() -> None:
    book = VerdictBook("eu", T0)
    mine, _ = book.expect([batch(5), batch(6, judged=frozenset({1})), batch(7)])
    book.take([
        (T0 + 1_100, ((3, 5), None, (VERIFIED, []))),
        (T0 + 1_100, ((3, 6), 0, (REJECTED, ["n must be positive"]))),
        (T0 + 1_100, ((3, 6), 1, (VERIFIED, []))),  # judged: the fold has not decided
    ])  # fmt: skip
    err = timeout_error("eu", 2.0, mine, {"op-x": Verdict("op-x", "ctr:x", True)})
    assert err.missing == ["op-6-1", "op-7-0", "op-7-1"]
    assert set(err.found) == {"op-5-0", "op-5-1", "op-6-0", "op-x"}
    assert err.found["op-5-1"].dot == ("eu", 3, 5, 1) and err.found["op-5-1"].accepted
    assert not err.found["op-6-0"].accepted and err.found["op-6-0"].reasons == ["n must be positive"]
    assert list(err.verified) == ["op-6-1"]
    v = err.verified["op-6-1"]
    assert v.accepted and v.applied is None and v.dot == ("eu", 3, 6, 1)


def test_a_fold_decision_makes_a_verified_operation_final_not_provisional() -> None:
    book = VerdictBook("eu", T0)
    mine, _ = book.expect([batch(8, judged=frozenset({0, 1}))])
    book.take([(T0 + 1_010, ((3, 8), None, (VERIFIED, []))), (T0 + 1_020, ((3, 8), 0, (REFUSED, ["no rights"])))])
    err = timeout_error("eu", 1.0, mine)
    assert err.missing == ["op-8-1"] and list(err.verified) == ["op-8-1"]
    assert err.found["op-8-0"].applied is False and err.found["op-8-0"].reasons == ["no rights"]


def test_a_transition_not_folded_in_time_is_carried_as_verified() -> None:
    accepted = Verdict("op-t", "wf:a", True, [], ("eu", 1, 2, 0))
    other = Verdict("op-c", "ctr:a", True, [], ("eu", 1, 2, 1))
    with pytest.raises(VerdictTimeout) as e:
        transition_outcomes(lambda oid: None, {"op-t": Transition("wf:a", 5, "n", "done")},
                            {"op-t": accepted, "op-c": other}, 0.0)  # fmt: skip
    assert e.value.missing == ["op-t"] and list(e.value.found) == ["op-c"] and e.value.verified == {"op-t": accepted}
