"""Text (Yrs via pycrdt): the CRDT laws, convergence of concurrent edits, and bad updates refused."""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import Text
from jarvis.crdt.errors import TextUpdateError
from jarvis.crdt.text import decode_state_vector
from tests.unit.crdt.laws import check_laws

# (replica, action, position, amount, chars): action 0 insert, 1 delete, 2 gossip from replica+1
edits = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(0, 1000),
        st.integers(0, 4),
        st.text(alphabet="abcé😀\n", min_size=1, max_size=4),
    ),
    max_size=25,
)


def run(trace: list[tuple[int, int, int, int, str]]) -> tuple[list[Text], list[Any]]:
    replicas = [Text(n) for n in "abc"]
    deltas = []
    for r, action, pos, n, s in trace:
        me = replicas[r]
        size = len(me)
        if action == 0:
            deltas.append(me.insert(pos % (size + 1), s))
        elif action == 1 and size:
            at = pos % size
            deltas.append(me.delete(at, min(n, size - at)))
        elif action == 2:
            me.merge(replicas[(r + 1) % 3].copy())
    return replicas, deltas


@settings(max_examples=100, deadline=None)
@given(edits, st.randoms(use_true_random=False))
def test_laws(trace: list[Any], rng: random.Random) -> None:
    replicas, deltas = run(trace)
    check_laws(Text, replicas, deltas, rng)


@settings(max_examples=100, deadline=None)
@given(edits, st.randoms(use_true_random=False))
def test_concurrent_edits_from_three_replicas_converge(trace: list[Any], rng: random.Random) -> None:
    replicas, deltas = run(trace)
    # Each replica receives every other replica's updates in its own random order, some twice.
    for me in replicas:
        incoming = deltas + rng.sample(deltas, k=len(deltas) // 3)
        rng.shuffle(incoming)
        for d in incoming:
            me.apply_update(d.update)
    texts = {r.read() for r in replicas}
    clocks = [r.clock() for r in replicas]
    assert len(texts) == 1 and clocks[0] == clocks[1] == clocks[2]
    assert replicas[0] == replicas[1] == replicas[2]
    assert all(r.pending is None for r in replicas)  # every update integrated once all arrived
    view = replicas[0].view()
    assert view["text"] == texts.pop()
    assert decode_state_vector(base64.b64decode(view["state_vector"])) == clocks[0]


def test_an_update_that_arrives_before_its_dependency_is_kept_until_it_fits() -> None:
    a = Text("a")
    first, second = a.insert(0, "hello"), a.insert(5, " world")
    b = Text("b")
    b.apply_update(second.update)
    assert b.read() == "" and b.pending is not None
    kept = Text.from_dict(b.copy().to_dict())  # a copy and the plain data keep the waiting update
    for t in (b, kept):
        t.apply_update(base64.b64encode(first.update).decode())  # operations carry base64
        assert t.read() == "hello world" and t.pending is None and t == a


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b"garbage", "not a Yrs v1 update"),
        ("@@not base64@@", "not base64"),
        (b"", "empty"),
        ("", "empty"),
    ],
)
def test_a_malformed_update_is_refused_and_changes_nothing(bad: str | bytes, reason: str) -> None:
    t = Text("a")
    t.insert(0, "kept")
    before = (t.read(), t.state_vector(), t.to_dict())
    with pytest.raises(TextUpdateError, match=reason):
        t.apply_update(bad)
    assert (t.read(), t.state_vector(), t.to_dict()) == before


def test_a_truncated_update_is_refused_and_changes_nothing() -> None:
    update = Text("a").insert(0, "hello world").update
    assert update is not None
    t = Text("b")
    t.insert(0, "mine")
    before = t.to_dict()
    for cut in range(1, len(update) - 1):
        with pytest.raises(TextUpdateError, match="not a Yrs v1 update"):
            t.apply_update(update[:cut])
        assert t.to_dict() == before


def test_edits_out_of_range_are_refused() -> None:
    t = Text("a")
    t.insert(0, "abc")
    with pytest.raises(ValueError, match="insert index"):
        t.insert(4, "x")
    with pytest.raises(ValueError, match="does not fit"):
        t.delete(2, 2)
    assert t.read() == "abc"
