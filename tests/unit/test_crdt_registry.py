"""Adding a CRDT type is one spec and one `register` call: a type defined here, and nowhere else, is
known to the op model, the pipeline loader, the verifier's gate, the fold and replay."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jarvis.codec import encode_batch
from jarvis.crdt import registry
from jarvis.gate import Gate
from jarvis.materialize import ObjectState, fold_run
from jarvis.ops import KINDS_BY_TYPE, Dot, DotRun, Operation, OperationBatch, OperationError, validate
from jarvis.replay import SourcedOp, replay
from jarvis.security.keys import Signer, ensure_node_key
from jarvis.security.signing import sign_batch
from pipelines.loader import PipelineError, Pipelines, load, object_factory
from tests.trust_helpers import view_trusting

NOW_MS = int(time.time() * 1000)


class MaxRegister:
    """A register whose value only grows: merge is max, so any order of puts gives the same value."""

    __slots__ = ("node_id", "top")

    def __init__(self, node_id: str = "", top: int = 0) -> None:
        self.node_id = node_id
        self.top = top

    def put(self, n: int) -> None:
        self.top = max(self.top, n)

    def value(self) -> int:
        return self.top

    def to_dict(self) -> dict[str, Any]:
        return {"top": self.top}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaxRegister:
        return cls("", d["top"])


class MaxRegisterSpec(registry.CrdtSpec):
    name = "maxreg"
    crdt_class = MaxRegister
    kinds = ("put",)

    def mutate(
        self, value: Any, kind: str, args: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        value.put(args["n"])

    def check_args(self, kind: str, args: dict[str, Any], rule: Any, reasons: list[str]) -> None:
        if not isinstance(args.get("n"), int) or args["n"] < 0:
            reasons.append(f"a maxreg holds non-negative integers, got {args.get('n')!r}")

    def plot(self, view: Any) -> float:
        return float(view)


PIPELINE_FILE = "pipelines:\n  scores:\n    prefixes:\n      best: {type: maxreg}\n"


@pytest.fixture
def maxreg() -> Iterator[registry.CrdtSpec]:
    spec = registry.register(MaxRegisterSpec())  # the one call that adds the type
    yield spec
    registry.unregister("maxreg")


@pytest.fixture
def pipes(tmp_path: Path, maxreg: registry.CrdtSpec) -> Pipelines:
    path = tmp_path / "pipelines.yaml"
    path.write_text(PIPELINE_FILE)
    return load(path)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return ensure_node_key("reg-test", keys_dir=tmp_path)


def put(n: Any, object_id: str = "best:alice", hlc_ms: int = NOW_MS) -> Operation:
    return Operation(uuid.uuid4().hex, object_id, "maxreg", "put", {"n": n}, "reg-test", "eu", hlc_ms << 16)


def test_an_unregistered_type_is_unknown_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text(PIPELINE_FILE)
    with pytest.raises(PipelineError, match="unknown CRDT type 'maxreg'"):
        load(path)
    with pytest.raises(OperationError, match="unknown CRDT type 'maxreg'"):
        validate("best:alice", "maxreg", "put")


def test_the_op_model_knows_a_registered_type_and_its_kinds(maxreg: registry.CrdtSpec) -> None:
    assert KINDS_BY_TYPE["maxreg"] == ("put",)
    assert put(3).crdt_type == "maxreg"
    with pytest.raises(OperationError, match="a maxreg has no operation 'add'"):
        validate("best:alice", "maxreg", "add")


def test_unregistering_forgets_the_type(maxreg: registry.CrdtSpec) -> None:
    validate("best:alice", "maxreg", "put")
    registry.unregister("maxreg")
    with pytest.raises(OperationError, match="unknown CRDT type"):
        validate("best:alice", "maxreg", "put")
    registry.register(maxreg)  # for the fixture's teardown


def test_sdk_handles_name_the_types_they_produce(maxreg: registry.CrdtSpec) -> None:
    assert registry.handle_types("counter") == ("gcounter", "pncounter")
    assert registry.handle_types("register") == ("lww",)

    class CappedCounterSpec(MaxRegisterSpec):
        name = "cappedctr"
        handle = "counter"

    registry.register(CappedCounterSpec())
    try:
        assert registry.handle_types("counter") == ("gcounter", "pncounter", "cappedctr")
    finally:
        registry.unregister("cappedctr")
    assert registry.handle_types("counter") == ("gcounter", "pncounter")


def test_a_name_registered_twice_is_refused(maxreg: registry.CrdtSpec) -> None:
    with pytest.raises(ValueError, match="registered already"):
        registry.register(MaxRegisterSpec())


def test_the_gate_accepts_good_operations_and_rejects_bad_args_by_the_types_rule(
    pipes: Pipelines, signer: Signer, tmp_path: Path
) -> None:
    assert pipes.rule_for("best:alice").crdt_type == "maxreg"
    gate = Gate("eu", pipes, view_trusting(signer))
    ops = [put(3), put(-1), put(7, "best:bob"), put("x")]
    digests, sig = sign_batch(ops, signer)
    batch = OperationBatch("b", "reg-test", signer.key_id, "eu", NOW_MS << 16, ops, digests, sig)
    result = gate.check(encode_batch(batch), 0, 0, NOW_MS)
    assert result.accepted == [0, 2]
    assert [(r.index, r.reasons) for r in result.rejected] == [
        (1, ["a maxreg holds non-negative integers, got -1"]),
        (3, ["a maxreg holds non-negative integers, got 'x'"]),
    ]


def test_the_fold_and_replay_handle_a_registered_type(pipes: Pipelines) -> None:
    create = object_factory(pipes)
    states: dict[str, ObjectState] = {}

    def state_of(oid: str, t: str) -> ObjectState:
        return states.setdefault(oid, create(oid, t))

    ops = [put(3), put(9, hlc_ms=NOW_MS + 1), put(5, hlc_ms=NOW_MS + 2)]
    rows = [(i, o.object_id, o.crdt_type, o.kind, o.args, o.node_id, o.hlc) for i, o in enumerate(ops)]
    run = DotRun("eu", 0, 42, rows)
    done = fold_run(run, state_of)
    assert not done.failed and done.folded == {"maxreg": 3}
    again = fold_run(run, state_of)  # a redelivery of the same message
    assert again.duplicates == 3 and not again.changed

    live = states["best:alice"]
    assert live.view("eu")["value"] == 9 and live.ops == 3
    stored = ObjectState.from_bytes(live.to_bytes())  # the changelog's round trip
    assert stored.value.value() == 9 and stored.context == {"eu/0": [42, 2]}

    sourced = [SourcedOp(o, Dot("eu", 0, 42, i), "b", "k", i, b"", b"") for i, o in enumerate(ops)]
    report = replay(
        "best:alice", reversed(sourced), source="test", at_hlc=(NOW_MS + 1) << 16 | 0xFFFF,
        create=create, verify=lambda so: None,
    )  # fmt: skip
    assert report.failures == [] and report.ops_folded == 2
    assert report.value == 9 and [v for _, v in report.timeline] == [3.0, 9.0]
    full = replay("best:alice", sourced, source="test", at_hlc=None, create=create, verify=lambda so: None)
    full.live = live.view("eu")
    assert full.differences() == []
