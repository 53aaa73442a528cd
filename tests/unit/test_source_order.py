"""The fold folds each source partition in offset order, exactly once from its recorded position,
whatever a Faust-like consumer does: skip messages, deliver buffered ones after a seek, seek back on
its own, or start from a committed offset on either side of the recorded position."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.source_order import RESEEK_S, SourceOrder, Step

TP = ("jarvis.ops", 3)


def test_a_redelivered_message_after_later_ones_is_not_folded_out_of_order() -> None:
    order = SourceOrder()
    folded = []
    # What a restarted fold was seen getting: a first pass that misses 601, then Faust's seek back to 600.
    for offset in [600, 602, 603, 600, 601, 602, 603, 604]:
        step = order.step(TP, offset, lambda tp: 600, now=0.0)
        if step is Step.FOLD:
            order.folded(TP, offset)
            folded.append(offset)
    assert folded == [600, 601, 602, 603, 604]


def test_a_commit_ahead_of_the_recorded_position_sends_the_consumer_back() -> None:
    order = SourceOrder()
    assert order.step(TP, 110, lambda tp: 100, now=0.0) is Step.SEEK
    assert order.expected[TP] == 100
    assert order.step(TP, 111, lambda tp: 100, now=0.5) is Step.AHEAD  # still buffered from before
    assert order.step(TP, 112, lambda tp: 100, now=0.5 + RESEEK_S) is Step.SEEK  # that seek was undone
    assert order.step(TP, 100, lambda tp: 100, now=3.0) is Step.FOLD


def test_without_a_recorded_position_the_first_message_starts_and_reset_forgets() -> None:
    order = SourceOrder()
    assert order.step(TP, 7, lambda tp: None, now=0.0) is Step.FOLD
    order.folded(TP, 7)
    assert order.step(TP, 7, lambda tp: None, now=0.0) is Step.DUPLICATE
    order.reset()
    assert order.step(TP, 7, lambda tp: 9, now=0.0) is Step.DUPLICATE
    order.skip_to(TP, 20)
    assert order.step(TP, 20, lambda tp: 9, now=0.0) is Step.FOLD


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 60),
    data=st.data(),
)
def test_any_consumer_behaviour_yields_each_offset_once_in_order(n: int, data: st.DataObject) -> None:
    recorded = data.draw(st.integers(0, n - 1), label="recorded position")
    position = data.draw(st.integers(0, n), label="committed offset")  # either side of the record
    perturbations = data.draw(st.integers(0, 6), label="perturbations")
    order = SourceOrder()
    buffered: list[int] = []  # fetched, not yet delivered: survives a seek, as in Faust
    folded: list[int] = []
    now = 0.0
    for _ in range(20 * n + 400):
        if folded[-1:] == [n - 1] or (not folded and recorded == n):
            break
        action = "deliver"
        if perturbations and data.draw(st.booleans()):
            perturbations -= 1
            action = data.draw(st.sampled_from(["drop", "seek_back", "fetch_more"]))
        if action == "seek_back":  # Faust seeking on its own, e.g. to the committed offset
            position = data.draw(st.integers(0, position))
            continue
        if not buffered:
            if position >= n:
                position = data.draw(st.integers(0, n - 1))  # nothing to read: Faust's seek lands later
                continue
            k = data.draw(st.integers(1, 5)) if action == "fetch_more" else 1
            buffered.extend(range(position, min(n, position + k)))
            position = min(n, position + k)
        offset = buffered.pop(0)
        if action == "drop":  # a message the stream never hands to the agent
            continue
        now += 0.1
        step = order.step(TP, offset, lambda tp: recorded, now)
        if step is Step.FOLD:
            order.folded(TP, offset)
            folded.append(offset)
        elif step is Step.SEEK:
            position = order.expected[TP]
    assert folded == list(range(recorded, n))


def test_a_seek_whose_missing_offset_never_comes_is_made_again() -> None:
    order = SourceOrder()
    tp = ("jarvis.ops", 3)
    assert order.step(tp, 260, lambda _: None, now=0.0) is Step.FOLD
    order.folded(tp, 260)
    assert order.step(tp, 265, lambda _: None, now=1.0) is Step.SEEK  # 261..264 missing
    assert order.overdue(now=1.0 + RESEEK_S / 2) == []  # give the first seek its time
    assert order.overdue(now=1.0 + RESEEK_S) == [(tp, 261)]  # nothing came: send it back again
    assert order.overdue(now=1.0 + RESEEK_S + 0.1) == []  # counted as sent back just now
    assert order.step(tp, 261, lambda _: None, now=1.5 + RESEEK_S) is Step.FOLD
    order.folded(tp, 261)
    assert order.overdue(now=100.0) == []  # the missing offset came: nothing is overdue
