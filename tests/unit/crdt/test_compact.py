"""The compact representations (OR-Set dots as ints and shared blocks; TimeSeries and Workflow points
in sorted typed-array columns) against the plain ones they replaced (reference.py).

Random traces run in lockstep on replicas of both, with gossip, reads (which fill caches that later
inserts must invalidate), snapshots (copies that must not change while the original goes on) and
bursts long enough to fill OR-Set blocks and to take the many-points merge path. Both must agree on
plain data (to_dict, the persisted form), values and equality, whatever the order of delivery; and
the plain data of either must load into the compact form unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import ORSet, TimeSeries, Workflow
from jarvis.crdt.orset import BLOCK
from jarvis.crdt.pointlog import SMALL, PointLog
from tests.unit.crdt.reference import RefORSet, RefTimeSeries, RefWorkflow

NODES = ["a", "b", "c"]
ORIGINS = ["p/0", "q/1"]  # nodes of points named by the caller (the fold's dots), never a replica's own
STATES = ["draft", "submitted", "approved", "rejected"]
WF = {
    "initial": "draft",
    "states": STATES,
    "transitions": {"draft": ["submitted"], "submitted": ["approved", "rejected"], "rejected": ["draft"]},
    "guards": {"submitted->approved": "has_actor"},
    "deadlines": {"submitted": 60},
}
ELEMENTS = ["x", "y", "z", 1, "1", {"k": [1, 2]}, *(f"e{i}" for i in range(50))]

Op = Callable[[Any], Any]
Step = tuple[str, int, Any]


def _orset_op() -> st.SearchStrategy[Op]:
    elem = st.sampled_from(ELEMENTS)
    ts = st.integers(1, 40)
    node = st.sampled_from(NODES)
    return st.one_of(
        st.builds(lambda e: lambda r: r.add(e), elem),
        st.builds(lambda e: lambda r: r.remove(e), elem),
        st.builds(lambda e, n: lambda r: r.add(e, node=n), elem, node),
        st.builds(lambda e, t, n: lambda r: r.add(e, timestamp=t, node=n), elem, ts, node),
        st.builds(lambda e, t: lambda r: r.remove(e, before=t), elem, ts),
    )


def _point(t: int, seq: int) -> tuple[float, dict[str, Any] | None]:
    # A point's payload follows from its name, as in the pipeline (one name, one operation).
    return t * 0.5 - seq, ({"seq": seq} if seq % 3 == 0 else None)


def _ts_op() -> st.SearchStrategy[Op]:
    def explicit(t: int, n: str, seq: int) -> Op:
        v, meta = _point(t, seq)
        return lambda r: r.append_data_point(t, v, meta, node=n, seq=seq)

    return st.one_of(
        st.builds(lambda t, v: lambda r: r.append_data_point(t, v), st.integers(0, 30), st.integers(-5, 5)),
        st.builds(explicit, st.integers(0, 30), st.sampled_from(ORIGINS), st.integers(1, 12)),
    )


def _wf_op() -> st.SearchStrategy[Op]:
    def record(t: int, n: str, seq: int) -> Op:
        to, args = STATES[seq % 4], ({"by": "ada"} if seq % 2 else None)
        return lambda r: r.record_transition(to, t, n, args, seq=seq)

    def transition(to: str, t: int, by: bool) -> Op:
        return lambda r: r.transition(to, timestamp=t, **({"by": "ada"} if by else {}))

    return st.one_of(
        st.builds(lambda s, t: lambda r: r.record_transition(s, t, r.node_id), st.sampled_from(STATES), st.integers(1, 30)),
        st.builds(record, st.integers(1, 30), st.sampled_from(ORIGINS), st.integers(1, 12)),
        st.builds(transition, st.sampled_from(STATES), st.integers(1, 30), st.booleans()),
    )  # fmt: skip


def _burst(kind: str, start: int) -> Op:
    """Enough operations at once to fill OR-Set blocks and to take the many-points merge path."""
    if kind == "orset":
        return lambda r: [r.add(f"b{start + i}") for i in range(BLOCK + 9)]
    if kind == "timeseries":
        return lambda r: [r.append_data_point(start + i / 7, i) for i in range(SMALL + 9)]
    return lambda r: [r.record_transition(STATES[i % 4], start + i, r.node_id) for i in range(SMALL + 9)]


OPS = {"orset": _orset_op, "timeseries": _ts_op, "workflow": _wf_op}


def steps(kind: str) -> st.SearchStrategy[list[Step]]:
    r = st.integers(0, 2)
    return st.lists(
        st.one_of(
            st.tuples(st.just("op"), r, OPS[kind]()),
            st.tuples(st.just("op"), r, OPS[kind]()),
            st.tuples(st.just("op"), r, OPS[kind]()),
            st.tuples(st.just("op"), r, st.builds(lambda s: _burst(kind, s), st.integers(0, 20))),
            st.tuples(st.just("gossip"), r, r),
            st.tuples(st.just("deliver"), r, st.integers(0, 10_000)),
            st.tuples(st.just("read"), r, st.none()),
            st.tuples(st.just("snapshot"), r, st.none()),
        ),
        max_size=40,
    )


def make(kind: str, node: str, max_points: int | None) -> tuple[Any, Any]:
    if kind == "orset":
        return ORSet(node), RefORSet(node)
    if kind == "timeseries":
        return TimeSeries(node, max_points), RefTimeSeries(node, max_points)
    return Workflow(node, WF), RefWorkflow(node, WF)


def apply(op: Op, x: Any) -> tuple[Any, type[Exception] | None]:
    try:
        return op(x), None
    except ValueError as e:  # a refused transition: both must refuse it
        return None, type(e)


def deltas_of(out: Any) -> list[Any]:
    if out is None:
        return []
    return out if isinstance(out, list) else [out]


def read(x: Any) -> Any:
    if isinstance(x, TimeSeries | RefTimeSeries):
        return x.value(), x.range(3, 20), x.aggregate(0, 30, 4, "p90"), len(x)
    return x.value()


def run(kind: str, trace: list[Step], max_points: int | None, rng: random.Random) -> None:
    pairs = [make(kind, n, max_points) for n in NODES]
    new_deltas: list[Any] = []
    ref_deltas: list[Any] = []
    snapshots: list[tuple[Any, dict[str, Any]]] = []
    for what, r, arg in trace:
        new, ref = pairs[r]
        if what == "op":
            out_new, err_new = apply(arg, new)
            out_ref, err_ref = apply(arg, ref)
            assert err_new == err_ref
            new_deltas += deltas_of(out_new)
            ref_deltas += deltas_of(out_ref)
        elif what == "gossip":
            new.merge(pairs[arg][0].copy())
            ref.merge(pairs[arg][1].copy())
        elif what == "deliver":  # one earlier delta, straight to another replica
            if new_deltas:
                new.merge(new_deltas[arg % len(new_deltas)].copy())
                ref.merge(ref_deltas[arg % len(ref_deltas)].copy())
        elif what == "read":
            assert read(new) == read(ref)
        else:
            snap = new.copy()
            snapshots.append((snap, snap.to_dict()))
    for new, ref in pairs:
        assert new.to_dict() == ref.to_dict()
        assert read(new) == read(ref)
        assert type(new).from_dict(ref.to_dict(), new.node_id) == new
    for n1, r1 in pairs:
        for n2, r2 in pairs:
            assert (n1 == n2) == (r1 == r2)
    for snap, data in snapshots:
        assert snap.to_dict() == data  # the original went on; its copy did not change
    # Every delta, in any order, with duplicates: the same state from both, and equal to the full merge.
    order = list(range(len(new_deltas))) + rng.sample(range(len(new_deltas)), k=len(new_deltas) // 2)
    rng.shuffle(order)
    via_new, via_ref = make(kind, "z", max_points)
    full_new, full_ref = make(kind, "z", max_points)
    for i in order:
        via_new.merge(new_deltas[i].copy() if i % 2 else new_deltas[i])
        via_ref.merge(ref_deltas[i].copy())
    for new, ref in pairs:
        full_new.merge(new.copy())
        full_ref.merge(ref.copy())
    assert via_new.to_dict() == via_ref.to_dict()
    assert full_new.to_dict() == full_ref.to_dict()
    assert via_new == full_new and via_new.value() == full_new.value()


@settings(max_examples=150, deadline=None)
@given(steps("orset"), st.randoms(use_true_random=False))
def test_orset_compact_equals_plain(trace: list[Step], rng: random.Random) -> None:
    run("orset", trace, None, rng)


@settings(max_examples=150, deadline=None)
@given(steps("timeseries"), st.sampled_from([None, 4, SMALL + 3]), st.randoms(use_true_random=False))
def test_timeseries_columns_equal_plain(
    trace: list[Step], max_points: int | None, rng: random.Random
) -> None:
    run("timeseries", trace, max_points, rng)


@settings(max_examples=150, deadline=None)
@given(steps("workflow"), st.randoms(use_true_random=False))
def test_workflow_columns_equal_plain(trace: list[Step], rng: random.Random) -> None:
    run("workflow", trace, None, rng)


# -- the representations' own invariants ----------------------------------------------------------


def test_orset_blocks_survive_copies_removals_and_re_adds() -> None:
    s = ORSet("a")
    for i in range(3 * BLOCK):
        s.add(f"k{i}")
    snap, data = s.copy(), s.to_dict()
    s.remove("k1")
    s.add("k1")  # re-added: a new dot, in a new block
    s.add(f"k{3 * BLOCK - 1}")  # the open block's last key, re-added: must not appear twice in it
    s.add("fresh")
    assert snap.to_dict() == data
    dots = s.to_dict()["entries"]
    assert dots["sk1"] == [["a", 3 * BLOCK + 1]] and dots["sfresh"] == [["a", 3 * BLOCK + 3]]
    assert dots[f"sk{3 * BLOCK - 1}"] == [["a", 3 * BLOCK + 2]]
    assert ORSet.from_dict(s.to_dict(), "a") == s and ORSet.from_dict(s.to_dict(), "b") == s


def test_orset_skips_own_dots_it_has_already_seen() -> None:
    """b learns of dots in its own name (minted elsewhere, out of order): its adds step past them."""
    (a, ra), (b, rb) = make("orset", "a", None), make("orset", "b", None)
    for x in (a, ra):
        x.add("p", node="b")
    d, rd = a.add("q", node="b"), ra.add("q", node="b")  # (b, 2): b has not seen (b, 1)
    b.merge(d)
    rb.merge(rd)
    for e in ["r", "s", "t", *(f"u{i}" for i in range(BLOCK + 2))]:
        assert b.add(e).to_dict() == rb.add(e).to_dict()
    assert b.to_dict() == rb.to_dict() and b.to_dict()["entries"]["ss"] == [["b", 3]]


def test_deltas_are_full_states_that_take_any_operation() -> None:
    """Deltas share read-only empties or hold their one point as a tuple: still usable as replicas."""
    (s, rs), (t, rt), (w, rw) = (make(kind, "a", 3) for kind in ("orset", "timeseries", "workflow"))
    d, rd = s.add("x"), rs.add("x")
    for x in (d, rd):
        x.add("y")
        x.remove("x", before=3)
        x.add("z", timestamp=2, node="b")
        x.add("q", node="c")
    d.merge(s.remove("x"))
    rd.merge(rs.remove("x"))
    assert d.to_dict() == rd.to_dict() and d.elements() == rd.elements()
    dt, rdt = t.append_data_point(5, 1), rt.append_data_point(5, 1)
    for x in (dt, rdt):
        x.append_data_point(1, 2)
        x.merge(x.copy())
    assert dt.to_dict() == rdt.to_dict() and len(dt) == len(rdt) == 2
    dw, rdw = w.transition("submitted", timestamp=1), rw.transition("submitted", timestamp=1)
    for x in (dw, rdw):
        x.transition("rejected", timestamp=2)
    assert dw.to_dict() == rdw.to_dict() and dw.value() == rdw.value()


def test_orset_reads_the_old_plain_data() -> None:
    ref = RefORSet("a")
    for e in ["x", 1, {"k": 1}, "y"]:
        ref.add(e)
    ref.remove("y")
    ref.add("z", timestamp=5, node="b")
    ref.remove("w", before=3)
    s = ORSet.from_dict(ref.to_dict(), "a")
    assert s.to_dict() == ref.to_dict() and s.elements() == ref.elements()
    assert s.contains({"k": 1}) and s.contains(1) and not s.contains("1")


def test_workflow_reads_transitions_to_states_its_definition_lacks() -> None:
    old_def = {
        **WF,
        "states": [*STATES, "archived"],
        "transitions": {**WF["transitions"], "approved": ["archived"]},
    }
    ref = RefWorkflow("a", old_def)
    for to, t in [("submitted", 1), ("approved", 2), ("archived", 3), ("rejected", 4)]:
        ref.record_transition(to, t, "a", {"by": "ada"})
    data = {**ref.to_dict(), "definition": WF}  # the definition has since dropped "archived"
    w, plain = Workflow.from_dict(data), RefWorkflow.from_dict(data)
    assert w.to_dict() == plain.to_dict() and w.value() == plain.value() and w.state() == "approved"
    with pytest.raises(ValueError, match="unknown state"):
        w.record_transition("archived", 9, "a")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 9), st.sampled_from(NODES), st.integers(0, 9)), max_size=80),
    st.integers(0, 40),
)
def test_pointlog_is_the_sorted_set_of_names(names: list[tuple[int, str, int]], drop: int) -> None:
    one, bulk = PointLog("q", "d"), PointLog("q", "d")
    for t, n, s in names:
        one.add(t, n, s, float(s), {"t": t} if s % 2 else None)
    bulk.update([(t, n, s, float(s), {"t": t} if s % 2 else None) for t, n, s in names])
    model = sorted(set(names))
    assert [r[:3] for r in one.rows()] == model and one.same_points(bulk)
    assert list(one.values()) == list(bulk.values()) == [float(s) for _, _, s in model]
    k = min(drop, len(model))
    one.drop(k)
    assert [r[:3] for r in one.rows()] == model[k:]
    assert {name for name in one.extra} == {m for m in model[k:] if m[2] % 2}
    if k < len(model):
        assert one.find(*model[k]) == one.lo


@pytest.mark.parametrize("max_points", [10, 1000])
def test_timeseries_eviction_is_a_sliding_window(max_points: int) -> None:
    a = TimeSeries("a", max_points)
    for t in range(5 * max_points):
        a.append_data_point(t, t)
    assert len(a) == max_points and a.watermark == (4 * max_points, "a", 4 * max_points + 1)
    assert [p["timestamp"] for p in a.value()] == [float(t) for t in range(4 * max_points, 5 * max_points)]
    a.append_data_point(0, 0)  # below the watermark: dropped
    assert len(a) == max_points
