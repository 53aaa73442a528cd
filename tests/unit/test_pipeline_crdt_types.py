"""bcounter, text and map through the pipeline's pure parts: registry, gate rules, fold (with the
bounded counter decided by its origin region, refusals with their reasons), the fold's rights
service between two regions, and replay at T."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jarvis.crdt import Map, Text, registry
from jarvis.crdt.bcounter_spec import decide_in
from jarvis.crdt.text import encode_update
from jarvis.gate import RuleVerifier
from jarvis.materialize import ObjectState, RunFolded, fold_run
from jarvis.ops import Dot, DotRun, Operation
from jarvis.replay import SourcedOp, replay
from pipelines.loader import Pipelines, load, object_factory
from streams.rights import RightsService

NOW_MS = int(time.time() * 1000)
PIPES: Pipelines = load()
CREATE = object_factory(PIPES)


@pytest.fixture(autouse=True)
def nobody_decides() -> Iterator[None]:
    yield
    decide_in(None)


def op(object_id: str, kind: str, args: dict[str, Any], region: str = "eu", ms: int = NOW_MS) -> Operation:
    t = PIPES.rule_for(object_id).crdt_type  # type: ignore[union-attr]
    return Operation(uuid.uuid4().hex, object_id, t, kind, args, f"app-{region}", region, ms << 16)


def gate_reasons(o: Operation) -> list[str]:
    return RuleVerifier().check(o, PIPES.rule_for(o.object_id))[0]  # type: ignore[arg-type]


class Region:
    """One region's fold over its own log and the other regions' (a list of (origin, op) in the order
    this region folds them), with its rights service."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.states: dict[str, ObjectState] = {}
        self.offsets: dict[str, int] = {}  # next ingress offset per origin (one partition here)
        self.rights = RightsService(name, self.states.get)
        self.refused: list[str] = []

    def fold(self, origin: str, o: Operation, offset: int) -> RunFolded:
        decide_in(self.name)
        run = DotRun(origin, 0, offset, [(0, o.object_id, o.crdt_type, o.kind, o.args, o.node_id, o.hlc)])
        done = fold_run(run, lambda oid, t: self.states.setdefault(oid, CREATE(oid, t)))
        self.rights.note(run)
        for _, why in done.failed:
            self.refused.append(why)
            if origin == self.name:
                self.rights.refused(o, why)
        return done


class World:
    def __init__(self, *names: str) -> None:
        self.regions = {n: Region(n) for n in names}
        self.logs: dict[str, list[Operation]] = {n: [] for n in names}
        self.read: dict[tuple[str, str], int] = {}  # (folding region, origin) -> ops folded

    def produce(self, region: str, o: Operation) -> None:
        self.logs[region].append(o)

    def deliver(self, to: str, origin: str | None = None) -> None:
        """Fold everything `to` has not folded yet of `origin`'s log (all logs by default)."""
        for src in [origin] if origin else list(self.logs):
            log = self.logs[src]
            start = self.read.get((to, src), 0)
            for offset in range(start, len(log)):
                self.regions[to].fold(src, log[offset], offset)
            self.read[(to, src)] = len(log)

    def service_round(self, now: float) -> None:
        for name, r in self.regions.items():
            for oid, kind, args in r.rights.due(now):
                self.produce(
                    name, Operation(uuid.uuid4().hex, oid, "bcounter", kind, args, f"fold-{name}", name, 1)
                )


# -- registry and gate -----------------------------------------------------------------------------
def test_the_three_types_are_registered_with_their_handles_and_pipeline_prefixes() -> None:
    assert registry.KINDS["bcounter"] == ("increment", "decrement", "transfer", "decided")
    assert registry.KINDS["text"] == ("insert", "delete", "update")
    assert registry.KINDS["map"] == ("update", "remove")
    assert [registry.handle_types(h) for h in ("bcounter", "text", "map")] == [
        ("bcounter",),
        ("text",),
        ("map",),
    ]
    assert [PIPES.rules[p].crdt_type for p in ("bc", "txt", "mp")] == ["bcounter", "text", "map"]
    assert PIPES.rules["bc"].bound == 0 and PIPES.rules["stock"].bound == 0
    assert PIPES.rules["ctr"].crdt_type == "pncounter"  # existing prefixes keep their types
    assert PIPES.rules["inventory"].crdt_type == "pncounter"


@pytest.mark.parametrize(
    ("kind", "args", "reason"),
    [
        ("decrement", {"n": -1}, "decrement amount must be a non-negative integer, got -1"),
        ("decrement", {"n": 1.5}, "decrement amount must be a non-negative integer, got 1.5"),
        ("decrement", {"n": True}, "decrement amount must be a non-negative integer, got True"),
        ("increment", {"n": "3"}, "increment amount must be a non-negative integer, got '3'"),
        ("transfer", {"n": 2}, "transfer needs a region to send rights to, got None"),
        ("decided", {"region": "eu", "state": {"p": {}}}, "decided carries no bounded-counter state: KeyError: 'd'"),
        ("decided", {"region": "eu", "state": {"min": 5, "p": {}, "d": {}}}, "decided state has bound 5, the pipeline's is 0"),
    ],
)  # fmt: skip
def test_the_gate_refuses_bad_bcounter_arguments_with_the_reason(
    kind: str, args: dict[str, Any], reason: str
) -> None:
    assert gate_reasons(op("bc:sku-1", kind, args)) == [reason]


def test_the_gate_accepts_good_operations_of_each_type() -> None:
    t = Text()
    ins = encode_update(t.insert(0, "hello").update or b"")
    good = [
        op("bc:s", "increment", {"n": 5}), op("bc:s", "decrement", {"n": 1}),
        op("bc:s", "transfer", {"n": 1, "to_region": "us"}),
        op("bc:s", "decided", {"region": "eu", "state": {"min": 0, "p": {"eu": {"eu": 3}}, "d": {}}, "want": 2}),
        op("txt:d", "insert", {"index": 0, "s": "hello", "update": ins}), op("txt:d", "update", {"update": ins}),
        op("mp:r", "update", {"key": "name", "type": "register", "kind": "write", "args": {"value": "ada"}}),
        op("mp:r", "update", {"key": "notes", "type": "text", "kind": "update", "args": {"update": ins}}),
        op("mp:r", "remove", {"key": "name", "observed": Map().remove("name").to_dict()}),
    ]  # fmt: skip
    assert [gate_reasons(o) for o in good] == [[]] * len(good)


def test_the_gate_refuses_malformed_yrs_updates_and_unknown_nested_types() -> None:
    full = Text().insert(0, "hello world").update or b""
    truncated = encode_update(full[: len(full) // 2])
    assert gate_reasons(op("txt:d", "update", {"update": "***"}))[0].startswith(
        "text update refused: text update is not base64"
    )
    assert gate_reasons(op("txt:d", "update", {"update": truncated}))[0].startswith(
        "text update refused: not a Yrs v1 update"
    )
    assert gate_reasons(op("txt:d", "insert", {"index": 0, "s": "x"})) == [
        "text operation needs 'update': a base64 Yrs update, got NoneType"
    ]
    assert gate_reasons(op("mp:r", "update", {"key": "k", "type": "tree", "kind": "add", "args": {}})) == [
        "unknown nested type 'tree' in a map; known: counter, register, set, text"
    ]
    assert gate_reasons(op("mp:r", "update", {"key": "k", "type": "text", "kind": "insert", "args": {}})) == [
        "a map's text has no operation 'insert' in the pipeline; it has update"
    ]
    other = Map()
    other.update("b", "set", "add", {"element": 1})
    assert gate_reasons(op("mp:r", "remove", {"key": "a", "observed": other.remove("b").to_dict()})) == [
        "map remove of 'a' carries fields of other keys: b"
    ]  # fmt: skip


# -- the fold ----------------------------------------------------------------------------------------
def test_a_decrement_beyond_the_regions_rights_is_refused_with_the_reason_and_changes_nothing() -> None:
    eu = Region("eu")
    assert not eu.fold("eu", op("bc:s", "increment", {"n": 3}), 0).failed
    before = eu.states["bc:s"].to_bytes()
    done = eu.fold("eu", op("bc:s", "decrement", {"n": 5}), 1)
    assert done.failed == [
        (0, "fold cannot apply decrement to bc:s: insufficient rights in eu: holds 3, needs 5")
    ]
    done = eu.fold("eu", op("bc:s", "transfer", {"n": 4, "to_region": "us"}), 2)
    assert done.failed == [
        (0, "fold cannot apply transfer to bc:s: transfer of 4 exceeds the 3 rights eu holds")
    ]
    assert eu.states["bc:s"].to_bytes() == before
    assert not eu.fold("eu", op("bc:s", "decrement", {"n": 3}), 3).failed
    assert eu.states["bc:s"].view("eu")["value"] == {"value": 0, "min": 0, "rights": {"eu": 0}}


def test_mirrored_decisions_are_never_judged_again_the_decided_state_carries_them() -> None:
    w = World("eu", "us")
    w.produce("eu", op("bc:s", "increment", {"n": 2}))
    w.produce("eu", op("bc:s", "decrement", {"n": 2}))
    w.produce("eu", op("bc:s", "decrement", {"n": 1}))  # beyond eu's rights: refused in eu
    w.deliver("eu")
    w.deliver("us")  # us sees the raw decrements, cannot judge them, and skips them
    assert w.regions["us"].states["bc:s"].value.value() == 2 and not w.regions["us"].refused
    w.service_round(0.0)  # eu publishes its decisions
    w.deliver("us")
    w.deliver("eu")
    assert w.regions["eu"].refused == [
        "fold cannot apply decrement to bc:s: insufficient rights in eu: holds 0, needs 1"
    ]
    assert [w.regions[r].states["bc:s"].value.value() for r in ("eu", "us")] == [0, 0]


def test_rights_move_to_the_region_that_ran_dry_and_no_region_ever_goes_below_the_bound() -> None:
    w = World("eu", "us")
    w.produce("eu", op("bc:s", "increment", {"n": 10}))
    w.deliver("eu")
    w.deliver("us")
    sold = {"eu": 0, "us": 0}
    now = 0.0
    for _ in range(40):
        for r in ("eu", "us"):
            w.produce(r, op("bc:s", "decrement", {"n": 1}, region=r))
            before = len(w.regions[r].refused)
            w.deliver(r, r)
            sold[r] += len(w.regions[r].refused) == before
        now += 0.2
        w.service_round(now)
        for r in ("eu", "us"):
            w.deliver(r)
            assert w.regions[r].states["bc:s"].value.value() >= 0  # every read, in either region
    for _ in range(3):  # quiet: the last decisions reach everyone
        now += 1
        w.service_round(now)
        for r in ("eu", "us"):
            w.deliver(r)
    values = [w.regions[r].states["bc:s"].value for r in ("eu", "us")]
    assert values[0].value() == values[1].value() == 0
    assert sold["eu"] + sold["us"] == 10 and sold["us"] > 0  # us sold stock only eu had created
    assert sum(values[0].all_rights().values()) == values[0].value() - values[0].min


def test_a_region_that_lacked_rights_just_now_keeps_what_reaches_it_instead_of_sending_it_back() -> None:
    """With demand in both regions the last unit went back and forth: each region's ask answered
    while the unit was on its way to it (1 unit unsold after the MirrorMaker-paused test)."""
    from streams.rights import KEEP_S

    w = World("eu", "us")
    w.produce("eu", op("bc:s", "increment", {"n": 1}))
    w.deliver("eu")
    w.deliver("us")
    w.produce("us", op("bc:s", "decrement", {"n": 1}, region="us"))
    w.deliver("us", "us")  # refused in us: us asks
    w.service_round(0.0)
    w.deliver("eu")  # eu reads the ask
    w.produce("eu", op("bc:s", "decrement", {"n": 2}, region="eu"))
    w.deliver("eu", "eu")  # eu wants more than it holds: refused, eu lacks rights too
    w.service_round(0.1)
    assert not [o for o in w.logs["eu"] if o.kind == "transfer"]  # eu keeps its unit for itself
    w.produce("eu", op("bc:s", "decrement", {"n": 1}, region="eu"))
    w.deliver("eu", "eu")
    assert w.regions["eu"].states["bc:s"].value.value() == 0  # sold where it was
    w.service_round(0.1 + KEEP_S)
    for r in ("eu", "us"):
        w.deliver(r)
    assert [w.regions[r].states["bc:s"].value.value() for r in ("eu", "us")] == [0, 0]


def test_a_holder_without_demand_of_its_own_answers_once_the_keep_time_passed() -> None:
    from streams.rights import KEEP_S

    w = World("eu", "us")
    w.produce("eu", op("bc:s", "increment", {"n": 4}))
    w.produce("eu", op("bc:s", "decrement", {"n": 9}, region="eu"))  # eu lacked rights once
    w.deliver("eu")
    w.service_round(0.0)
    w.deliver("us")
    w.produce("us", op("bc:s", "decrement", {"n": 1}, region="us"))
    w.deliver("us", "us")
    w.service_round(0.2)
    w.deliver("eu")
    w.service_round(0.4)
    assert not [o for o in w.logs["eu"] if o.kind == "transfer"]
    w.service_round(0.1 + KEEP_S)
    assert [o.args for o in w.logs["eu"] if o.kind == "transfer"] == [{"n": 2, "to_region": "us"}]


def test_text_and_map_fold_each_regions_edits_into_the_same_state() -> None:
    a, b = Text(), Text()
    ua = a.insert(0, "hello").update or b""
    b.apply_update(ua)
    ub = b.insert(5, " world").update or b""
    uc = a.insert(0, ">").update or b""  # concurrent with b's
    patient = Map()
    w1 = {"key": "name", "type": "register", "kind": "write", "args": {"value": "Ada"}}
    w2 = {"key": "blood", "type": "register", "kind": "write", "args": {"value": "O+"}}
    ops = [
        ("eu", op("txt:d", "update", {"update": encode_update(ua)})),
        ("us", op("txt:d", "update", {"update": encode_update(ub)}, region="us")),
        ("eu", op("txt:d", "update", {"update": encode_update(uc)})),
        ("eu", op("mp:p", "update", w1)), ("us", op("mp:p", "update", w2, region="us")),
        ("us", op("mp:p", "remove", {"key": "name", "observed": patient.remove("name").to_dict()}, region="us")),
    ]  # fmt: skip
    eu, us = Region("eu"), Region("us")
    for i, (origin, o) in enumerate(ops):
        assert not eu.fold(origin, o, i).failed
    us_first = sorted(enumerate(ops), key=lambda io: io[1][0] != "us")  # each origin still in log order
    for i, (origin, o) in us_first:
        assert not us.fold(origin, o, i).failed
    for r in (eu, us):
        assert r.states["txt:d"].view(r.name)["value"]["text"] == ">hello world"
        # field-level: both fields survive, and the remove saw nothing of 'name', so it stays
        assert r.states["mp:p"].view(r.name)["value"]["entries"] == {"name": "Ada", "blood": "O+"}
    assert eu.states["txt:d"].value == us.states["txt:d"].value
    assert eu.states["mp:p"].value == us.states["mp:p"].value


def test_a_map_remove_resets_what_the_client_observed() -> None:
    eu = Region("eu")
    w = {"key": "name", "type": "register", "kind": "write", "args": {"value": "Ada"}}
    eu.fold("eu", op("mp:p", "update", w), 0)
    seen = Map.from_dict(eu.states["mp:p"].view("eu")["value"]["state"])  # what the SDK reads
    assert not eu.fold(
        "eu", op("mp:p", "remove", {"key": "name", "observed": seen.remove("name").to_dict()}), 1
    ).failed
    assert eu.states["mp:p"].value.value() == {}


def test_malformed_input_that_reaches_the_fold_is_refused_with_its_reason_and_the_object_is_unchanged() -> (
    None
):
    eu = Region("eu")
    eu.fold("eu", op("txt:d", "update", {"update": encode_update(Text().insert(0, "ok").update or b"")}), 0)
    eu.fold(
        "eu", op("mp:p", "update", {"key": "n", "type": "counter", "kind": "increment", "args": {"n": 2}}), 1
    )
    before = {k: s.to_bytes() for k, s in eu.states.items()}
    bad = [
        op("txt:d", "update", {"update": base64.b64encode(b"\x05\xff\xff").decode()}),
        op("mp:p", "update", {"key": "n", "type": "tree", "kind": "add", "args": {}}),
        op("bc:s", "decrement", {"n": -2}),
    ]
    reasons = [eu.fold("eu", o, 2 + i).failed[0][1] for i, o in enumerate(bad)]
    assert reasons[0].startswith("fold cannot apply update to txt:d: not a Yrs v1 update")
    assert (
        reasons[1]
        == "fold cannot apply update to mp:p: unknown nested type 'tree' in a map; known: counter, register, set, text"
    )
    assert (
        reasons[2]
        == "fold cannot apply decrement to bc:s: decrement amount must be a non-negative integer, got -2"
    )
    assert {k: s.to_bytes() for k, s in eu.states.items() if k in before} == before
    assert eu.states["txt:d"].value.read() == "ok"


# -- replay ------------------------------------------------------------------------------------------
def test_replay_at_t_gives_each_type_as_decided_then() -> None:
    t = Text()
    u1 = encode_update(t.insert(0, "v1").update or b"")
    u2 = encode_update(t.insert(2, " and v2").update or b"")
    state_after = {"min": 0, "p": {"eu": {"eu": 5}}, "d": {"eu": 2}}
    ops = [
        op("txt:d", "update", {"update": u1}, ms=NOW_MS),
        op("txt:d", "update", {"update": u2}, ms=NOW_MS + 10),
        op("bc:s", "increment", {"n": 5}, ms=NOW_MS),
        op("bc:s", "decrement", {"n": 2}, ms=NOW_MS + 1),  # raw: replay folds only what was decided
        op("bc:s", "decided", {"region": "eu", "state": state_after, "want": 0}, ms=NOW_MS + 2),
    ]
    sourced = [SourcedOp(o, Dot("eu", 0, 100 + i, 0), "b", "k", 0, b"", b"") for i, o in enumerate(ops)]

    def at(oid: str, ms: int | None) -> Any:
        rel = [s for s in sourced if s.op.object_id == oid]
        hlc = None if ms is None else (ms << 16) | 0xFFFF
        return replay(oid, rel, source="test", at_hlc=hlc, create=CREATE, verify=lambda so: None).value

    assert at("txt:d", NOW_MS)["text"] == "v1" and at("txt:d", None)["text"] == "v1 and v2"
    assert at("bc:s", NOW_MS + 1)["value"] == 5 and at("bc:s", None)["value"] == 3
