"""The fold's pure core: dots make redelivery harmless; any interleaving of origins converges."""

from __future__ import annotations

import random
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.materialize import FoldError, ObjectState, apply, fold_run, new_state
from jarvis.ops import Dot, DotRun, Operation
from pipelines.loader import pipelines


def op(
    kind: str, args: dict, hlc: int, crdt_type: str = "pncounter", oid: str = "ctr:1", node: str = "n"
) -> Operation:
    return Operation(uuid.uuid4().hex, oid, crdt_type, kind, args, node, "eu", hlc)


def test_duplicates_and_redeliveries_are_skipped() -> None:
    st_ = new_state("ctr:1", "pncounter")
    o = op("increment", {"n": 5}, 1)
    assert apply(st_, o, Dot("eu", 0, 10, 0))
    assert not apply(st_, o, Dot("eu", 0, 10, 0))  # the same dot again
    assert not apply(st_, o, Dot("eu", 0, 9, 3))  # an older dot from the same origin
    assert apply(st_, op("increment", {"n": 1}, 2), Dot("us", 0, 3, 0))  # another origin
    assert st_.value.value() == 6 and st_.ops == 2


def test_state_round_trips_with_its_context() -> None:
    wf = pipelines().rule_for("wf:1").workflow.as_dict()
    s = new_state("wf:1", "workflow", workflow=wf)
    apply(s, op("transition", {"to_state": "submitted"}, 5, "workflow", "wf:1"), Dot("eu", 2, 7, 1))
    back = ObjectState.from_bytes(s.to_bytes())
    assert back.value == s.value and back.context == {"eu/2": [7, 1]}
    assert back.view("eu")["value"]["state"] == "submitted"


ORIGINS = ["eu", "us", "ap"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_two_regions_folding_the_same_ops_in_different_interleavings_agree(data: st.DataObject) -> None:
    ctype, oid = data.draw(
        st.sampled_from(
            [
                ("orset", "ors:1"),
                ("graph", "g:1"),
                ("lww", "reg:1"),
                ("pncounter", "ctr:1"),
                ("timeseries", "ts:1"),
            ]
        )
    )
    rng = random.Random(data.draw(st.integers(0, 10**6)))
    per_origin: dict[str, list[tuple[Operation, Dot]]] = {o: [] for o in ORIGINS}
    for i in range(data.draw(st.integers(1, 30))):
        origin = rng.choice(ORIGINS)
        hlc = rng.randint(1, 40)
        kind, args = {
            "orset": lambda: rng.choice(
                [("add", {"element": rng.choice("xy")}), ("remove", {"element": rng.choice("xy")})]
            ),
            "graph": lambda: rng.choice(
                [
                    ("add_vertex", {"vertex": "a"}),
                    ("remove_vertex", {"vertex": "a"}),
                    ("add_edge", {"src": "a", "dst": "a"}),
                ]
            ),
            "lww": lambda i=i: ("write", {"value": i}),
            "pncounter": lambda: rng.choice([("increment", {"n": 2}), ("decrement", {"n": 1})]),
            "timeseries": lambda i=i: ("append", {"timestamp": rng.randint(0, 5), "value": i}),
        }[ctype]()
        o = Operation(uuid.uuid4().hex, oid, ctype, kind, args, f"node-{origin}", origin, hlc)
        per_origin[origin].append((o, Dot(origin, 0, i, 0)))

    def fold(seed: int) -> ObjectState:
        r = random.Random(seed)
        queues = {k: list(v) for k, v in per_origin.items()}
        s = new_state(oid, ctype, max_points=1000)
        while any(queues.values()):
            origin = r.choice([k for k, q in queues.items() if q])
            o, d = queues[origin].pop(0)  # each origin's ops stay in order, as Kafka keeps them
            apply(s, o, d)
            if r.random() < 0.3:
                apply(s, o, d)  # redelivered duplicate
        return s

    a, b = fold(1), fold(2)
    assert a.value == b.value and a.value.value() == b.value.value()


KIND_ARGS = {
    "pncounter": [("increment", {"n": 2}), ("decrement", {"n": 1})],
    "orset": [("add", {"element": "x"}), ("remove", {"element": "x"}), ("add", {"element": "y"})],
    "graph": [("add_vertex", {"vertex": "a"}), ("add_edge", {"src": "a", "dst": "a"}), ("remove_vertex", {"vertex": "a"})],
    "lww": [("write", {"value": 1}), ("write", {"value": {"k": [2]}, "category": "c"})],
    "timeseries": [("append", {"timestamp": 3, "value": 1.5})],
}
PREFIX = {"pncounter": "ctr", "orset": "ors", "graph": "g", "lww": "reg", "timeseries": "ts"}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_folding_a_run_equals_applying_its_operations_one_by_one(data: st.DataObject) -> None:
    rng = random.Random(data.draw(st.integers(0, 10**6)))
    rows = []
    for index in range(data.draw(st.integers(1, 25))):
        ctype = rng.choice(list(KIND_ARGS))
        kind, args = rng.choice(KIND_ARGS[ctype])
        rows.append((index, f"{PREFIX[ctype]}:{rng.randint(0, 2)}", ctype, kind, args, "n1", rng.randint(1, 50)))
    # A type clash (a counter operation on a set) fails alone, with its reason.
    rows.append((len(rows), "ors:0", "pncounter", "increment", {"n": 1}, "n1", 7))
    known = data.draw(st.integers(0, len(rows)))  # the object states already hold the first ones
    run = DotRun("us", 4, 90, rows)

    def fresh(oid: str, t: str) -> ObjectState:
        return new_state(oid, {"ctr": "pncounter", "ors": "orset", "g": "graph", "reg": "lww", "ts": "timeseries"}[oid.split(":")[0]])

    one_by_one: dict[str, ObjectState] = {}
    by_run: dict[str, ObjectState] = {}
    for index, oid, t, kind, args, node, hlc in rows[:known]:
        for states in (one_by_one, by_run):
            s = states.setdefault(oid, fresh(oid, t))
            if s.crdt_type == t:
                apply(s, Operation("x", oid, t, kind, args, node, "us", hlc), Dot("us", 4, 90, index))
    expected_failed = []
    for index, oid, t, kind, args, node, hlc in rows:
        s = one_by_one.setdefault(oid, fresh(oid, t))
        try:
            apply(s, Operation("x", oid, t, kind, args, node, "us", hlc), Dot("us", 4, 90, index))
        except FoldError:
            expected_failed.append(index)

    done = fold_run(run, lambda oid, t: by_run.get(oid) or by_run.setdefault(oid, fresh(oid, t)))
    assert {o: (s.value, s.context, s.ops, s.updated_hlc) for o, s in by_run.items()} == {
        o: (s.value, s.context, s.ops, s.updated_hlc) for o, s in one_by_one.items()
    }
    assert [i for i, _ in done.failed] == expected_failed and "is a orset, not a pncounter" in done.failed[-1][1]
    applied = [r for r in rows[known:] if r[0] not in expected_failed]
    assert done.duplicates == len([r for r in rows[:known] if r[0] not in expected_failed])
    assert sum(done.folded.values()) == len(applied) and set(done.changed) == {r[1] for r in applied}
    assert done.newest_hlc == max((r[6] for r in applied), default=0)
