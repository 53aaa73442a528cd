"""Map of nested CRDTs: the laws, remove-resets against a sequential model and under concurrency."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import Map, Text
from jarvis.crdt.errors import MapError
from tests.unit.crdt.laws import check_laws

KEYS = ["x", "y"]
TYPES = ["counter", "register", "set", "text"]

# (replica, key, nested type, action, number, element): action 0-2 a nested operation, 3 remove the key,
# 4 gossip from replica+1
steps = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(KEYS),
        st.sampled_from(TYPES),
        st.integers(0, 4),
        st.integers(0, 5),
        st.sampled_from(["a", "b", 1]),
    ),
    max_size=30,
)


def nested_op(m: Map, t: str, action: int, n: int, e: Any, k: str, ts: int) -> tuple[str, dict[str, Any]]:
    """One operation of nested type t that fits m's current value."""
    if t == "counter":
        return ("increment" if action % 2 == 0 else "decrement"), {"n": n}
    if t == "register":
        return "write", {"value": n}
    if t == "set":
        return ("add" if action != 1 else "remove"), {"element": e}
    size = len(m.get(k, "text") or "")
    if action == 1 and size:
        at = n % size
        return "delete", {"index": at, "n": min(2, size - at)}
    return "insert", {"index": n % (size + 1), "s": str(e)}


def run(trace: list[Any]) -> tuple[list[Map], list[Any]]:
    replicas = [Map(n) for n in "abc"]
    deltas = []
    for i, (r, k, t, action, n, e) in enumerate(trace):
        me = replicas[r]
        if action == 4:
            me.merge(replicas[(r + 1) % 3].copy())
        elif action == 3:
            deltas.append(me.remove(k))
        else:
            kind, args = nested_op(me, t, action, n, e, k, i)
            deltas.append(me.update(k, t, kind, args, timestamp=i))
    return replicas, deltas


@settings(max_examples=150, deadline=None)
@given(steps, st.randoms(use_true_random=False))
def test_laws(trace: list[Any], rng: random.Random) -> None:
    replicas, deltas = run(trace)
    check_laws(Map, replicas, deltas, rng)


class Model:
    """The sequential meaning: a dict of plain values; removing a key forgets it."""

    def __init__(self) -> None:
        self.fields: dict[tuple[str, str], Any] = {}

    def apply(self, k: str, t: str, kind: str, args: dict[str, Any]) -> None:
        cur = self.fields.get((k, t))
        if t == "counter":
            p, n = cur or (0, 0)
            self.fields[(k, t)] = (p + args["n"], n) if kind == "increment" else (p, n + args["n"])
        elif t == "register":
            self.fields[(k, t)] = args["value"]
        elif t == "set":
            s = set(cur or ())
            (s.add if kind == "add" else s.discard)(args["element"])
            self.fields[(k, t)] = s
        else:
            s = cur or ""
            i = args["index"]
            self.fields[(k, t)] = (
                s[:i] + args["s"] + s[i:] if kind == "insert" else s[:i] + s[i + args["n"] :]
            )

    def remove(self, k: str) -> None:
        for f in [f for f in self.fields if f[0] == k]:
            del self.fields[f]

    def value(self) -> dict[str, Any]:
        def shown(t: str, v: Any) -> Any:
            return v[0] - v[1] if t == "counter" else sorted(v, key=repr) if t == "set" else v

        def present(t: str, v: Any) -> bool:  # an empty nested value is no key (AntidoteDB's bottom)
            return v != (0, 0) if t == "counter" else bool(v) or t == "register"

        live = {f: v for f, v in self.fields.items() if present(f[1], v)}
        names = [k for k, _ in live]
        return {(k if names.count(k) == 1 else f"{k}@{t}"): shown(t, v) for (k, t), v in live.items()}


@settings(max_examples=200, deadline=None)
@given(steps)
def test_one_replica_equals_the_sequential_model(trace: list[Any]) -> None:
    m, model = Map("a"), Model()
    for i, (_, k, t, action, n, e) in enumerate(trace):
        if action >= 3:
            m.remove(k)
            model.remove(k)
        else:
            kind, args = nested_op(m, t, action, n, e, k, i)
            m.update(k, t, kind, args, timestamp=i)
            model.apply(k, t, kind, args)
    got = m.value()
    for name, v in list(got.items()):
        if isinstance(v, list):
            got[name] = sorted(v, key=repr)
    assert got == model.value()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.booleans(), st.integers(0, 5)), max_size=12),
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=6),
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=6),
)
def test_a_remove_resets_only_what_it_observed(
    shared: list[tuple[int, bool, int]],
    after_remove: list[tuple[bool, int]],
    concurrent: list[tuple[bool, int]],
) -> None:
    """a and b share a history; a removes the key then goes on, while b updates concurrently: what
    survives is exactly what the remove did not see (counter: the sum; set: the elements)."""
    a, b = Map("a"), Map("b")
    for who, up, n in shared:
        (a if who == 0 else b).update("k", "counter", "increment" if up else "decrement", {"n": n})
        (a if who == 0 else b).update("s", "set", "add", {"element": n})
    a.merge(b.copy())
    b.merge(a.copy())
    a.remove("k")
    a.remove("s")
    expected, elements = 0, set()
    for who, ops in ((a, after_remove), (b, concurrent)):
        for up, n in ops:
            who.update("k", "counter", "increment" if up else "decrement", {"n": n})
            who.update("s", "set", "add", {"element": n})
            expected += n if up else -n
            elements.add(n)
    for x, y in ((a, b), (b, a)):
        x.merge(y.copy())
    assert a == b
    counted = any(n for _, n in after_remove + concurrent)  # steps of 0 leave the counter empty
    assert a.get("k", "counter") == (expected if counted else None)
    assert a.get("s", "set") == (sorted(elements) if elements else None)


def test_concurrent_updates_to_a_removed_key_survive_with_only_their_own_effect() -> None:
    a, b = Map("a"), Map("b")
    for op in (
        ("c", "counter", "increment", {"n": 5}),
        ("r", "register", "write", {"value": "old"}),
        ("s", "set", "add", {"element": "old"}),
        ("t", "text", "insert", {"index": 0, "s": "hello"}),
    ):
        b.merge(a.update(*op, timestamp=1))
    removals = [a.remove(k) for k in "crst"]
    concurrent = [
        b.update("c", "counter", "increment", {"n": 2}),
        b.update("r", "register", "write", {"value": "new"}, timestamp=0),  # older clock: still survives
        b.update("s", "set", "add", {"element": "new"}),
        b.update("t", "text", "insert", {"index": 5, "s": "!"}),
    ]
    for d in concurrent:
        a.merge(d)
    for d in removals:
        b.merge(d)
    assert a == b
    assert a.value() == {"c": 2, "r": "new", "s": ["new"], "t": "!"}


def test_field_level_merges_of_a_record() -> None:
    eu, us = Map("eu"), Map("us")
    us.merge(eu.update("name", "register", "write", {"value": "Ann"}, timestamp=1))
    d1 = eu.update("allergies", "set", "add", {"element": "penicillin"}, timestamp=2)
    d2 = us.update("name", "register", "write", {"value": "Ann Lee"}, timestamp=3)
    eu.merge(d2)
    us.merge(d1)
    assert eu.value() == us.value() == {"name": "Ann Lee", "allergies": ["penicillin"]}


def test_one_key_used_with_two_types_concurrently_keeps_both() -> None:
    a, b = Map("a"), Map("b")
    da = a.update("k", "counter", "increment", {"n": 1})
    db = b.update("k", "register", "write", {"value": "v"})
    a.merge(db)
    b.merge(da)
    assert a.value() == b.value() == {"k@counter": 1, "k@register": "v"}


def test_a_text_field_folds_updates_made_elsewhere() -> None:
    author = Text("author")
    update = author.insert(0, "draft").update
    assert update is not None
    m = Map("fold")
    m.update("body", "text", "update", {"update": base64.b64encode(update).decode()})
    assert m.value() == {"body": "draft"}


@pytest.mark.parametrize(
    "nested_type, kind, reason",
    [
        ("hyperloglog", "add", "unknown nested type 'hyperloglog'"),
        ("counter", "write", "has no operation 'write'"),
        (None, "add", "unknown nested type None"),
    ],
)
def test_unknown_nested_types_and_kinds_are_refused(nested_type: Any, kind: str, reason: str) -> None:
    m = Map("a")
    m.update("k", "counter", "increment", {"n": 1})
    before = m.to_dict()
    with pytest.raises(MapError, match=reason):
        m.update("k", nested_type, kind, {})
    assert m.to_dict() == before
    with pytest.raises(MapError, match="unknown nested type 'bogus' in a stored map"):
        Map.from_dict({"context": {"vv": {}, "cloud": []}, "fields": [["k", "bogus", {}]]})


def test_metadata_stays_bounded_under_update_remove_cycles() -> None:
    """The context absorbs every dot into one integer per replica, an empty register or set leaves
    nothing, and a reset counter keeps two integers per replica: whatever the history."""
    a, b = Map("a"), Map("b")
    for i in range(10_000):
        b.merge(a.update("r", "register", "write", {"value": i}, timestamp=i))
        b.merge(a.update("s", "set", "add", {"element": i % 7}))
        b.merge(a.update("c", "counter", "increment", {"n": 1}))
        b.merge(a.remove("r"))
        b.merge(a.remove("s"))
        b.merge(a.remove("c"))
    for m in (a, b):
        d = m.to_dict()
        assert d["context"] == {"vv": {"a": 20_000}, "cloud": []}
        assert [f[:2] for f in d["fields"]] == [["c", "counter"]] and m.value() == {}
        assert len(json.dumps(d)) < 200


_ORIGIN_WRITES = st.lists(
    st.tuples(st.sampled_from(["eu", "us", "ap"]), st.sampled_from(["ward", "name"]), st.integers(0, 3),
              st.integers(1, 6)),
    min_size=1, max_size=12,
)  # fmt: skip


@given(_ORIGIN_WRITES, st.randoms(use_true_random=False))
def test_the_fold_gives_every_region_the_same_register_whatever_the_arrival_order(writes, rng: random.Random) -> None:
    # The pipeline folds each operation with update(..., timestamp=hlc, node=origin) in every region,
    # in whatever order the origins' streams interleave there (one origin's in its log order). Two
    # providers writing one field concurrently once left eu and us with different winners for good.
    clock: dict[str, int] = {}
    ops = []
    for origin, k, v, step in writes:
        clock[origin] = clock.get(origin, 0) + step  # an origin's timestamps grow along its log
        ops.append((origin, k, v, clock[origin]))

    def arrival() -> list[tuple[str, str, int, int]]:
        queues = {o: [op for op in ops if op[0] == o] for o in clock}
        out = []
        while any(queues.values()):
            o = rng.choice(sorted(q for q in queues if queues[q]))
            out.append(queues[o].pop(0))
        return out

    def fold(order: list[tuple[str, str, int, int]]) -> Map:
        m = Map("fold")
        for origin, k, v, ts in order:
            m.update(k, "register", "write", {"value": v}, timestamp=ts, node=origin, blind=True)
        return m

    a, b = fold(arrival()), fold(arrival())
    assert a.value() == b.value()
    newest = {}
    for origin, k, v, ts in ops:
        newest[k] = max(newest.get(k, (ts, origin, v)), (ts, origin, v))
    assert a.value() == {k: v for k, (_ts, _o, v) in newest.items()}
