from __future__ import annotations

import json

import pytest

from jarvis.crdt import (
    HLC,
    GCounter,
    Graph,
    LWWRegister,
    ORSet,
    TimeSeries,
    VectorClock,
    Workflow,
    hlc_pack,
    hlc_unpack,
)

WF = {
    "initial": "draft",
    "states": ["draft", "submitted", "approved", "rejected"],
    "transitions": {"draft": ["submitted"], "submitted": ["approved", "rejected"], "rejected": ["draft"]},
    "guards": {"submitted->approved": "has_actor"},
    "deadlines": {"submitted": 60},
}


def test_orset_add_wins_over_a_concurrent_remove() -> None:
    a, b = ORSet("a"), ORSet("b")
    b.merge(a.add("x"))
    removal = b.remove("x")  # b observed a's add and removes it...
    concurrent = a.add("x")  # ...while a adds x again
    a.merge(removal)
    b.merge(concurrent)
    assert a.contains("x") and b.contains("x") and a == b


def test_orset_remove_affects_only_what_was_observed() -> None:
    a, b = ORSet("a"), ORSet("b")
    add_b = b.add("x")
    removal = a.remove("x")  # a never saw b's add
    a.merge(add_b)
    a.merge(removal)
    assert a.contains("x")


@pytest.mark.parametrize("cycles", [1_000_000])
def test_orset_metadata_does_not_grow_with_add_remove_cycles(cycles: int) -> None:
    s = ORSet("a")
    for _ in range(cycles):
        s.add("x")
        s.remove("x")
    s.add("x")
    assert s.metadata_size() <= 2  # one dot and one version-vector entry
    assert len(json.dumps(s.to_dict())) < 100
    log = ORSet("fold")
    for t in range(0, 2 * cycles, 2):
        log.add("x", timestamp=t)
        log.remove("x", before=t + 1)
    assert log.metadata_size() <= 1 and not log.contains("x")


def test_graph_metadata_is_bounded_and_edges_hide_with_their_vertex() -> None:
    g = Graph("a")
    for _ in range(100_000):
        g.add_vertex("v")
        g.remove_vertex("v")
    assert g.metadata_size() <= 2
    for v in "abc":
        g.add_vertex(v)
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    assert g.shortest_path("a", "c") == ["a", "b", "c"]
    g.remove_vertex("b")
    assert g.edge_list() == [] and g.shortest_path("a", "c") is None
    g.add_vertex("b")
    assert g.edge_list() == [("a", "b"), ("b", "c")]
    assert g.subgraph(["a", "b"]) == {"vertices": ["a", "b"], "edges": [["a", "b"]]}
    assert g.neighbours("b") == ["a", "c"]


def test_timeseries_eviction_converges_whatever_the_order() -> None:
    a, b = TimeSeries("a", max_points=3), TimeSeries("b", max_points=3)
    da = [a.append_data_point(t, t) for t in (1, 5, 9)]
    db = [b.append_data_point(t, -t) for t in (2, 6, 7, 8)]
    x, y = TimeSeries("x", 3), TimeSeries("y", 3)
    for d in da + db:
        x.merge(d)
    for d in reversed(db + da):
        y.merge(d)
    assert x == y and [p["timestamp"] for p in x.value()] == [7.0, 8.0, 9.0]
    x.merge(da[0])  # an evicted point re-delivered stays evicted
    assert len(x) == 3
    agg = x.aggregate(0, 100, 10, "sum")
    assert agg == [{"start": 0.0, "value": -6.0, "count": 3}]
    with pytest.raises(ValueError, match="unknown aggregate"):
        x.aggregate(0, 1, 1, "median")


def test_workflow_rejects_disallowed_transitions_and_resolves_concurrent_ones() -> None:
    w = Workflow("a", WF)
    w.transition("submitted", timestamp=10)
    with pytest.raises(ValueError, match="guard"):
        w.transition("approved", timestamp=11)  # guard needs an actor
    w.transition("approved", timestamp=12, by="ada")
    other = Workflow("b", WF)
    other.record_transition("submitted", 10, "b")
    other.record_transition("rejected", 11, "b")
    w.merge(other)
    other.merge(w)
    assert w.state() == other.state() == "rejected"  # rejected (ts 11) precedes approved (ts 12)
    assert [h["applied"] for h in w.history()] == [True, False, True, False]
    assert w.value()["deadline"] is None


def test_lww_register_category_resolver_prefers_security() -> None:
    r = LWWRegister("a", resolver="category")
    r.write({"category": "security", "value": 1}, timestamp=5)
    r.write({"category": "convenience", "value": 2}, timestamp=9)
    assert r.read()["value"] == 1
    plain = LWWRegister("a")
    plain.write("old", timestamp=5, node="z")
    plain.write("new", timestamp=5, node="zz")  # same timestamp: node id breaks the tie
    assert plain.read() == "new"


def test_clocks() -> None:
    ticks = iter([100, 100, 99, 200])
    h = HLC("n", clock=lambda: next(ticks))
    t1, t2, t3 = h.now(), h.now(), h.now()
    assert t1 < t2 < t3 and hlc_unpack(t3) == (100, 2)
    assert h.update(hlc_pack(500, 7)) == hlc_pack(500, 8)
    a, b = VectorClock(), VectorClock()
    a.increment("x")
    assert a.compare(b) == "after" and b.compare(a) == "before"
    b.increment("y")
    assert a.compare(b) == "concurrent"
    b.merge(a)
    assert a.compare(b) == "before" and a.happens_before(b)
    assert GCounter("a").increment(3).value() == 3
