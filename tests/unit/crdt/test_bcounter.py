"""Bounded counter: the CRDT laws, the bound under any delivery, and the origin's decisions."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import BoundedCounter, judge_decrement, judge_transfer
from jarvis.crdt.errors import BoundedCounterError
from tests.unit.crdt.laws import check_laws

REGIONS = ["eu", "us", "ap"]

# (actor, action, amount, target): action 0 increment, 1 decrement, 2 transfer, 3 gossip from target
steps = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 6), st.integers(0, 2)), max_size=40
)


def check_bound(c: BoundedCounter) -> None:
    rights = c.all_rights()
    assert c.value() >= c.min
    assert all(r >= 0 for r in rights.values()), rights
    assert sum(rights.values()) == c.value() - c.min  # rights conserved
    assert sum(c.d.values()) <= sum(
        row.get(i, 0) for i, row in c.p.items()
    )  # accepted decrements <= increments


def run(
    trace: list[tuple[int, int, int, int]], bound: int = 0
) -> tuple[list[BoundedCounter], list[Any], int]:
    """Each region acts on its own replica; a decrement or transfer the region's judge refuses is not made."""
    replicas = [BoundedCounter(r, min=bound) for r in REGIONS]
    deltas: list[Any] = []
    refused = 0
    for actor, action, n, target in trace:
        me, there = replicas[actor], REGIONS[target]
        if action == 0:
            deltas.append(me.increment(n))
        elif action == 1:
            if judge_decrement(me, me.node_id, n) is None:
                deltas.append(me.decrement(n))
            else:
                refused += 1
        elif action == 2:
            if judge_transfer(me, me.node_id, n, there) is None:
                deltas.append(me.transfer(n, there))
            else:
                refused += 1
        else:
            me.merge(replicas[target].copy())
        for r in replicas:
            check_bound(r)
    return replicas, deltas, refused


@settings(max_examples=200, deadline=None)
@given(steps, st.randoms(use_true_random=False), st.integers(-3, 3))
def test_laws_and_bound_under_any_delivery(trace: list[Any], rng: random.Random, bound: int) -> None:
    replicas, deltas, _ = run(trace, bound)
    full = check_laws(lambda n: BoundedCounter(n, min=bound), replicas, deltas, rng)
    check_bound(full)
    # Partition and reordering: any subset of the deltas, in any order, with duplicates, never shows a
    # value below the bound, at any step of its delivery.
    seen = BoundedCounter("partitioned", min=bound)
    some = [d for d in deltas if rng.random() < 0.6]
    some += rng.sample(some, k=len(some) // 3)
    rng.shuffle(some)
    for d in some:
        seen.merge(d.copy())
        check_bound(seen)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3), st.integers(0, 6)), max_size=60),
    st.randoms(use_true_random=False),
)
def test_two_regions_folding_operations_from_the_log_keep_the_bound(
    trace: list[Any], rng: random.Random
) -> None:
    """The pipeline's shape: each region judges its own operations in its log order and applies the
    other's as decided, delivered in their origin's order, late (a partition), with re-deliveries."""
    names = REGIONS[:2]
    folds = [BoundedCounter(r) for r in names]
    logs: list[list[tuple[str, int, int]]] = [[], []]  # per origin: (kind, n, seq)
    delivered = [0, 0]  # how far each region has read the other's log
    for actor, action, n in trace:
        me, other = folds[actor], 1 - actor
        seq = len(logs[actor]) + 1
        if action == 0:
            me.increment(n, seq=seq)
            logs[actor].append(("increment", n, seq))
        elif action == 1 and judge_decrement(me, names[actor], n) is None:
            me.decrement(n, seq=seq)
            logs[actor].append(("decrement", n, seq))
        elif action == 2 and judge_transfer(me, names[actor], n, names[other]) is None:
            me.transfer(n, names[other], seq=seq)
            logs[actor].append(("transfer", n, seq))
        elif action == 3:  # MirrorMaker delivers some of the other's log, then re-sends a few
            log = logs[other]
            upto = rng.randint(delivered[actor], len(log))
            redo = rng.randint(max(0, delivered[actor] - 3), delivered[actor])
            for kind, k, s in log[redo:upto]:
                apply(me, kind, k, names[other], names[actor], s)
            delivered[actor] = max(delivered[actor], upto)
        for f in folds:
            check_bound(f)
    for i in (0, 1):  # heal: everything delivered, twice
        for kind, k, s in logs[1 - i] * 2:
            apply(folds[i], kind, k, names[1 - i], names[i], s)
    assert folds[0] == folds[1] and folds[0].value() == folds[1].value()
    check_bound(folds[0])


def apply(c: BoundedCounter, kind: str, n: int, origin: str, to: str, seq: int) -> None:
    if kind == "increment":
        c.increment(n, region=origin, seq=seq)
    elif kind == "decrement":
        c.decrement(n, region=origin, seq=seq)
    else:
        c.transfer(n, to, region=origin, seq=seq)


def test_decisions_give_their_reasons() -> None:
    c = BoundedCounter("eu")
    c.increment(3)
    assert judge_decrement(c, "eu", 3) is None
    assert judge_decrement(c, "eu", 5) == "insufficient rights in eu: holds 3, needs 5"
    assert judge_decrement(c, "us", 1) == "insufficient rights in us: holds 0, needs 1"
    assert judge_transfer(c, "eu", 5, "us") == "transfer of 5 exceeds the 3 rights eu holds"
    assert judge_transfer(c, "eu", 1, "eu") == "eu cannot transfer rights to itself"
    for bad in (-1, 1.5, True, "2", None):
        assert "must be a non-negative integer" in (judge_decrement(c, "eu", bad) or "")
        assert "must be a non-negative integer" in (judge_transfer(c, "eu", bad, "us") or "")
    before = c.to_dict()
    with pytest.raises(BoundedCounterError, match="insufficient rights in eu: holds 3, needs 4"):
        c.decrement(4)
    with pytest.raises(BoundedCounterError, match="must be a non-negative integer"):
        c.increment(-1)
    assert c.to_dict() == before  # a refused operation changes nothing


def test_rights_move_with_transfers_and_mirrored_decrements_are_not_rejudged() -> None:
    eu, us = BoundedCounter("eu"), BoundedCounter("us")
    us.merge(eu.increment(10))
    us.merge(eu.transfer(4, "us"))
    assert (eu.rights("eu"), eu.rights("us"), us.rights("us")) == (6, 4, 4)
    eu.merge(us.decrement(4))
    assert eu.value() == us.value() == 6 and eu.rights("us") == 0
    # us judged that decrement; eu applies it as decided, even where its own view would refuse it
    late = BoundedCounter("eu")
    late.decrement(2, region="us", seq=1)
    assert late.d == {"us": 2}
    assert late.decrement(2, region="us", seq=1).d == {} and late.d == {"us": 2}  # a duplicate dot


def test_an_empty_counter_stands_at_its_bound_and_bounds_must_agree() -> None:
    assert BoundedCounter("a", min=5).value() == 5
    with pytest.raises(BoundedCounterError, match="different bounds"):
        BoundedCounter("a", min=0).merge(BoundedCounter("b", min=1))
    with pytest.raises(BoundedCounterError, match="bound must be an integer"):
        BoundedCounter("a", min=0.5)  # type: ignore[arg-type]


def test_state_does_not_grow_with_operations() -> None:
    eu, us = BoundedCounter("eu"), BoundedCounter("us")
    for i in range(10_000):
        us.merge(eu.increment(2, seq=3 * i + 1))
        us.merge(eu.decrement(1, seq=3 * i + 2))
        us.merge(eu.transfer(1, "us", seq=3 * i + 3))
    assert eu == us and eu.value() == 10_000 and eu.all_rights() == {"eu": 0, "us": 10_000}
    assert len(json.dumps(eu.to_dict())) < 120  # six integers and the bound, whatever the history
