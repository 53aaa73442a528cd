"""The incremental state digest (jarvis/state_digest.py, streams/state_digests.py) equals the full
computation over every object after any sequence of changes: objects of every CRDT type changing
many times, held back or written to the table, recovered from a changelog, dropped, cleared."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import registry as crdt_registry
from jarvis.crdt.text import Text, encode_update
from jarvis.materialize import apply
from jarvis.ops import Dot, Operation
from jarvis.state_digest import ObservedDict, StateDigest, full_digests, object_line, partition_digest
from pipelines.loader import object_factory, pipelines
from streams.fold_state import FoldState
from streams.state_digests import DigestKeeper
from tests.unit.test_fold_state import TableStandIn

PARTITIONS = 6
_text_update = encode_update(Text("t").insert(0, "hi").update or b"")
# One valid operation per CRDT type of the default pipelines: prefix, type, kind, args (n varies).
OPS: dict[str, tuple[str, str, str, Any]] = {
    "pncounter": ("ctr", "pncounter", "increment", lambda n: {"n": n}),
    "gcounter": ("gctr", "gcounter", "increment", lambda n: {"n": n}),
    "gset": ("gs", "gset", "add", lambda n: {"element": n}),
    "orset": ("ors", "orset", "add", lambda n: {"element": f"e{n}"}),
    "lww": ("reg", "lww", "write", lambda n: {"value": {"n": n, "s": "é"}}),
    "timeseries": ("ts", "timeseries", "append", lambda n: {"timestamp": 1700000000.0 + n, "value": n}),
    "graph": ("g", "graph", "add_edge", lambda n: {"src": "a", "dst": f"v{n}"}),
    "workflow": ("wf", "workflow", "transition", lambda n: {"to_state": "submitted", "args": {}}),
    "bcounter": ("bc", "bcounter", "increment", lambda n: {"n": n}),
    "text": ("txt", "text", "update", lambda n: {"update": _text_update}),
    "map": ("mp", "map", "update", lambda n: {"key": "k", "type": "counter", "kind": "increment", "args": {"n": n}}),
}  # fmt: skip


def test_every_crdt_type_is_covered() -> None:
    assert set(OPS) == set(crdt_registry.SPECS)


def _full(state: FoldState) -> dict[str, str]:
    """The full computation: every object this worker holds, read as the query views read it."""
    pairs = []
    for oid in state.object_ids():
        st_ = state.peek(oid)
        if st_ is not None:
            pairs.append((oid, st_.value.value()))
    return full_digests(pairs, PARTITIONS)


class Fold:
    """A FoldState on a stand-in table, changed the ways the fold and Faust change it."""

    def __init__(self) -> None:
        self.table = TableStandIn()
        self.state = FoldState("eu", self.table, pipelines(), cache=None)  # type: ignore[arg-type]
        self.keeper = DigestKeeper(self.state, PARTITIONS)
        self.create = object_factory(pipelines())
        self.offset = 0

    def fold(self, crdt_type: str, obj: int, n: int) -> None:
        prefix, t, kind, args = OPS[crdt_type]
        oid = f"{prefix}:{obj}"
        st_ = self.state.load(oid) or self.create(oid, t)
        self.offset += 1
        op = Operation(f"op{self.offset}", oid, t, kind, args(n), "n1", "eu", self.offset << 16)
        assert apply(st_, op, Dot("eu", 0, self.offset, 0))
        self.state.changed(oid, 0, st_)

    def recover(self, crdt_type: str, obj: int, n: int) -> None:
        """An object arriving from the changelog: written into the storage by Faust, not the fold."""
        prefix, t, kind, args = OPS[crdt_type]
        oid = f"{prefix}:{obj}"
        st_ = self.create(oid, t)
        op = Operation("r", oid, t, kind, args(n), "n2", "us", 1 << 16)
        apply(st_, op, Dot("us", 0, 1, 0))
        self.state.recovering = True
        self.table.data.update({oid.encode(): st_.to_bytes()})

    def step(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "fold":
            self.fold(*action[1:])
        elif kind == "recover":
            self.recover(*action[1:])
        elif kind == "settle":
            self.state.write_unwritten()
        elif kind == "start":  # the fold's next record after a recovery
            self.state.start_batch()
        elif kind == "drop":  # Faust drops a partition's keys once no longer assigned
            keys = sorted(k for k in self.table.data if k.decode() not in self.state.unwritten)
            if keys:
                key = keys[action[1] % len(keys)]
                self.table.data.pop(key, None)
                self.state.live.pop(key.decode(), None)
        elif kind == "tick":
            self.keeper.refresh_slice()


_types = st.sampled_from(sorted(OPS))
_objects = st.integers(0, 5)
_actions = st.one_of(
    st.tuples(st.just("fold"), _types, _objects, st.integers(1, 5)),
    st.tuples(st.just("recover"), _types, _objects, st.integers(1, 5)),
    st.tuples(st.just("settle")),
    st.tuples(st.just("start")),
    st.tuples(st.just("drop"), st.integers(0, 100)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("digest")),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(_actions, max_size=60))
def test_the_incremental_digest_equals_the_full_computation_after_any_changes(actions: list[Any]) -> None:
    f = Fold()
    for a in actions:
        if a[0] == "digest":
            assert f.keeper.current_now() == _full(f.state)
        else:
            f.step(a)
    assert f.keeper.current_now() == _full(f.state)
    assert len(f.keeper.digest) == len(f.state.object_ids())


def test_an_object_changing_many_times_counts_once_and_with_its_latest_value() -> None:
    f = Fold()
    for n in range(1, 50):
        f.fold("lww", 1, n)
        if n % 7 == 0:
            f.state.write_unwritten()
        if n % 5 == 0:
            assert f.keeper.current_now() == _full(f.state)
    f.state.write_unwritten()
    digests = f.keeper.current_now()
    value = f.state.peek("reg:1").value.value()  # type: ignore[union-attr]
    assert value == {"n": 49, "s": "é"}
    only = full_digests([("reg:1", value)], PARTITIONS)
    assert digests == only and len(f.keeper.digest) == 1


def test_the_async_answer_equals_the_full_one_and_two_orders_agree() -> None:
    a, b = Fold(), Fold()
    for t in sorted(OPS):
        for obj in range(3):
            a.fold(t, obj, obj + 1)
    a.state.write_unwritten()
    assert asyncio.run(a.keeper.current()) == _full(a.state)
    # The same states arriving another way (from a changelog, in the opposite order) agree.
    b.state.recovering = True
    b.table.data.update(dict(reversed(list(a.table.data.items()))))
    assert asyncio.run(b.keeper.current()) == asyncio.run(a.keeper.current())
    b.offset = 1000  # past the dots recovered
    b.fold("pncounter", 0, 1)
    assert asyncio.run(b.keeper.current()) != asyncio.run(a.keeper.current())


def test_the_digest_parts() -> None:
    d = StateDigest(PARTITIONS)
    store = ObservedDict({b"ctr:a": 1}, d)
    assert d.stale == {b"ctr:a"}
    store.update({b"ctr:b": 2})
    store.pop(b"ctr:a")
    store[b"ctr:c"] = 3
    del store[b"ctr:c"]
    assert d.stale == {b"ctr:a", b"ctr:b", b"ctr:c"}
    assert d.refresh(lambda k: (store[k],) if k in store else None) == 0
    assert d.digests() == full_digests([("ctr:b", 2)], PARTITIONS)
    store.clear()
    assert len(d) == 0 and d.digests() == {}
    assert object_line("ctr:a", {"b": 1, "a": [2]}) == b'ctr:a\x00{"a":[2],"b":1}\n'
    assert partition_digest(0, 0) != partition_digest(1, 0)
