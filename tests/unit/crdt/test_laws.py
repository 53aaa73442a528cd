"""CRDT laws, from random operation traces on several replicas (never from independently random states).

For every type: merge is commutative, associative and idempotent; delivering every delta in any
order with any duplicates gives the state of the full merge; and where a sequential model exists
the merged value equals it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import GCounter, Graph, GSet, LWWRegister, ORSet, PNCounter, TimeSeries, Workflow

NODES = ["a", "b", "c"]
WF = {
    "initial": "draft",
    "states": ["draft", "submitted", "approved", "rejected"],
    "transitions": {"draft": ["submitted"], "submitted": ["approved", "rejected"], "rejected": ["draft"]},
}

Op = Callable[[Any], Any]


def op_strategy(kind: str) -> st.SearchStrategy[tuple[int, Op]]:
    elem = st.sampled_from(["x", "y", "z", 1, {"k": 1}])
    ts = st.integers(min_value=1, max_value=50)
    node = st.integers(min_value=0, max_value=2)
    if kind == "gcounter":
        ops = st.builds(lambda n: lambda r: r.increment(n), st.integers(0, 5))
    elif kind == "pncounter":
        ops = st.one_of(
            st.builds(lambda n: lambda r: r.increment(n), st.integers(0, 5)),
            st.builds(lambda n: lambda r: r.decrement(n), st.integers(0, 5)),
        )
    elif kind == "gset":
        ops = st.builds(lambda e: lambda r: r.add(e), elem)
    elif kind == "orset":
        ops = st.one_of(
            st.builds(lambda e: lambda r: r.add(e), elem),
            st.builds(lambda e: lambda r: r.remove(e), elem),
            st.builds(lambda e, t: lambda r: r.add(e, timestamp=t), elem, ts),
            st.builds(lambda e, t: lambda r: r.remove(e, before=t), elem, ts),
        )
    elif kind == "lww":
        ops = st.builds(lambda v, t: lambda r: r.write(v, timestamp=t), st.integers(0, 9), ts)
    elif kind == "lww-category":
        cat = st.sampled_from(["security", "privacy", "performance", "convenience", "other"])
        ops = st.builds(
            lambda c, v, t: lambda r: r.write({"category": c, "value": v}, timestamp=t),
            cat,
            st.integers(0, 9),
            ts,
        )
    elif kind == "timeseries":
        ops = st.builds(
            lambda t, v: lambda r: r.append_data_point(t, v), st.integers(0, 20), st.floats(-5, 5)
        )
    elif kind == "graph":
        v = st.sampled_from(["p", "q", "r"])
        ops = st.one_of(
            st.builds(lambda a: lambda r: r.add_vertex(a), v),
            st.builds(lambda a: lambda r: r.remove_vertex(a), v),
            st.builds(lambda a, b: lambda r: r.add_edge(a, b), v, v),
            st.builds(lambda a, b: lambda r: r.remove_edge(a, b), v, v),
            st.builds(lambda a, t: lambda r: r.add_vertex(a, timestamp=t), v, ts),
            st.builds(lambda a, t: lambda r: r.remove_vertex(a, before=t), v, ts),
        )
    elif kind == "workflow":
        ops = st.builds(
            lambda s, t: lambda r: r.record_transition(s, t, r.node_id),
            st.sampled_from(WF["states"]),
            ts,
        )
    else:
        raise AssertionError(kind)
    return st.tuples(node, ops)


def fresh(kind: str, node: str) -> Any:
    return {
        "gcounter": lambda: GCounter(node),
        "pncounter": lambda: PNCounter(node),
        "gset": lambda: GSet(node),
        "orset": lambda: ORSet(node),
        "lww": lambda: LWWRegister(node),
        "lww-category": lambda: LWWRegister(node, resolver="category"),
        "timeseries": lambda: TimeSeries(node, max_points=6),
        "graph": lambda: Graph(node),
        "workflow": lambda: Workflow(node, WF),
    }[kind]()


KINDS = ["gcounter", "pncounter", "gset", "orset", "lww", "lww-category", "timeseries", "graph", "workflow"]


def run_trace(kind: str, trace: list[tuple[int, Op]], sync_every: int) -> tuple[list[Any], list[Any]]:
    """Apply ops on 3 replicas, with occasional gossip (so removes observe remote adds)."""
    replicas = [fresh(kind, n) for n in NODES]
    deltas = []
    for i, (r, op) in enumerate(trace):
        deltas.append(op(replicas[r]))
        if sync_every and i % sync_every == sync_every - 1:
            a, b = replicas[i % 3], replicas[(i + 1) % 3]
            a.merge(b.copy())
    return replicas, deltas


def merged(kind: str, states: list[Any]) -> Any:
    out = fresh(kind, "z")
    for s in states:
        out.merge(s.copy())
    return out


def traces(kind: str) -> st.SearchStrategy:
    return st.tuples(
        st.lists(op_strategy(kind), max_size=25), st.integers(0, 4), st.randoms(use_true_random=False)
    )


def _check_laws(kind: str, data: tuple[list[tuple[int, Op]], int, random.Random]) -> None:
    trace, sync_every, rng = data
    replicas, deltas = run_trace(kind, trace, sync_every)
    a, b, c = replicas
    # commutative
    ab, ba = a.copy(), b.copy()
    ab.merge(b.copy())
    ba.merge(a.copy())
    assert ab == ba
    assert ab.value() == ba.value()
    # associative
    left = a.copy()
    left.merge(b.copy())
    left.merge(c.copy())
    bc = b.copy()
    bc.merge(c.copy())
    right = a.copy()
    right.merge(bc)
    assert left == right
    # idempotent
    again = left.copy()
    again.merge(left.copy())
    assert again == left
    # deltas in any order, with duplicates, equal the full-state merge
    full = merged(kind, replicas)
    shuffled = deltas + rng.sample(deltas, k=len(deltas) // 2)
    rng.shuffle(shuffled)
    via_deltas = fresh(kind, "z")
    for d in shuffled:
        via_deltas.merge(d.copy())
    assert via_deltas.value() == full.value()
    assert via_deltas == full
    # round trip to plain data
    cls = type(full)
    restored = cls.from_dict(full.to_dict()) if kind != "workflow" else Workflow.from_dict(full.to_dict())
    assert restored == full and restored.value() == full.value()


def make_test(kind: str) -> Callable[..., None]:
    @settings(max_examples=120, deadline=None)
    @given(traces(kind))
    def test(data: Any) -> None:
        _check_laws(kind, data)

    test.__name__ = f"test_laws_{kind.replace('-', '_')}"
    return test


for _kind in KINDS:
    globals()[f"test_laws_{_kind.replace('-', '_')}"] = make_test(_kind)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.integers(0, 9)), max_size=40))
def test_pncounter_equals_the_sequential_sum(ops: list[tuple[int, bool, int]]) -> None:
    replicas = [PNCounter(n) for n in NODES]
    total = 0
    for r, up, n in ops:
        (replicas[r].increment if up else replicas[r].decrement)(n)
        total += n if up else -n
    assert merged("pncounter", replicas).value() == total


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["x", "y"]), st.booleans()), max_size=30))
def test_orset_on_one_replica_equals_a_plain_set(ops: list[tuple[int, str, bool]]) -> None:
    s, model = ORSet("a"), set()
    for _, e, add in ops:
        if add:
            s.add(e)
            model.add(e)
        else:
            s.remove(e)
            model.discard(e)
    assert s.elements() == sorted(model)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "y"]), st.booleans(), st.integers(1, 30)), max_size=30))
def test_orset_log_form_equals_newest_add_versus_newest_remove(ops: list[tuple[str, bool, int]]) -> None:
    s = ORSet("a")
    adds: dict[str, int] = {}
    removes: dict[str, int] = {}
    for e, add, t in ops:
        if add:
            s.add(e, timestamp=t)
            adds[e] = max(adds.get(e, -1), t)
        else:
            s.remove(e, before=t)
            removes[e] = max(removes.get(e, -1), t)
    assert s.elements() == sorted(e for e, t in adds.items() if t >= removes.get(e, -1))
