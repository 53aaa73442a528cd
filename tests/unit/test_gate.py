"""The verifier's gate on signed batches built as the SDK builds them (keys in a temporary dir)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pytest

from jarvis.codec import encode_batch
from jarvis.codec.batch_builder import BatchBuilder, Head
from jarvis.gate import Gate, RuleVerifier
from jarvis.ops import Operation, OperationBatch
from jarvis.security.keys import Signer, create_key, ensure_node_key
from jarvis.security.signing import sign_batch, sign_digests
from pipelines.loader import PrefixRule, pipelines
from tests.trust_helpers import view_trusting

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return ensure_node_key("gate-test", keys_dir=tmp_path)


@pytest.fixture
def gate(signer: Signer, tmp_path: Path) -> Gate:
    return Gate("eu", pipelines(), view_trusting(signer))


def op(object_id: str = "ctr:1", kind: str = "increment", args: dict | None = None, **kw: object) -> Operation:
    fields = dict(
        op_id=uuid.uuid4().hex, object_id=object_id, crdt_type="pncounter", kind=kind,
        args={"n": 1} if args is None else args, node_id="gate-test", region="eu", hlc=NOW_MS << 16,
    )  # fmt: skip
    fields.update(kw)
    return Operation(**fields)  # type: ignore[arg-type]


def signed(ops: list[Operation], signer: Signer, tamper: dict[int, Operation] | None = None) -> bytes:
    digests, sig = sign_batch(ops, signer)
    sent = [(tamper or {}).get(i, o) for i, o in enumerate(ops)]
    return encode_batch(OperationBatch("b", "gate-test", signer.key_id, "eu", NOW_MS << 16, sent, digests, sig))


def test_good_batch_is_accepted_whole(gate: Gate, signer: Signer) -> None:
    ops = [op(f"ctr:{i}") for i in range(20)]
    result = gate.check(signed(ops, signer), 3, 7, NOW_MS)
    assert not result.rejected
    assert result.accepted == list(range(20)) and result.confidences == [1.0] * 20
    assert result.batch.ops() == ops


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (op(args={"n": 1e13}), "number 10000000000000.0 at args.n is out of range"),
        (op(args={"n": 1, "x": -5e12}), "number -5000000000000.0 at args.x is out of range"),
        (op(args={"n": 1, "deep": {"x": [1, -2e12]}}), "number -2000000000000.0 at args.deep.x[1] is out of range"),
        (op(args={"n": -1}), "counter step must be a non-negative integer"),
        (op("nope:1"), "unknown object prefix 'nope'"),
        (op(hlc=(NOW_MS - 2 * 86_400_000) << 16), "timestamp too old"),
        (op(hlc=(NOW_MS + 3_600_000) << 16), "in the future"),
        (op(node_id="someone-else"), "differs from the batch signer 'gate-test'"),
        (op(crdt_type="gcounter"), "holds pncounter objects, not gcounter"),
    ],
)
def test_a_bad_operation_is_rejected_alone_with_its_reason(
    gate: Gate, signer: Signer, bad: Operation, reason: str
) -> None:
    ops = [op(), bad, op()]
    result = gate.check(signed(ops, signer), 0, 0, NOW_MS)
    assert result.accepted == [0, 2]
    assert len(result.rejected) == 1 and result.rejected[0].index == 1
    assert any(reason in r for r in result.rejected[0].reasons), result.rejected[0].reasons


def test_content_altered_after_signing_is_caught_per_operation(gate: Gate, signer: Signer) -> None:
    ops = [op(), op(), op()]
    forged = dataclasses.replace(ops[1], args={"n": 1000})
    result = gate.check(signed(ops, signer, tamper={1: forged}), 0, 0, NOW_MS)
    assert result.accepted == [0, 2]
    assert "digest mismatch for op 1" in result.rejected[0].reasons[0]


def test_untrusted_signer_and_garbage_reject_everything(gate: Gate, tmp_path: Path) -> None:
    stranger = create_key(tmp_path / "elsewhere", "gate-test")  # same node, a key nobody granted
    result = gate.check(signed([op(), op()], stranger), 0, 0, NOW_MS)
    assert not result.accepted and len(result.rejected) == 2
    assert result.rejected[0].reasons == [f"key {stranger.key_id} of node gate-test is not trusted in eu"]
    assert result.untrusted_key
    garbage = gate.check(b"\x00garbage", 0, 0, NOW_MS)
    assert garbage.batch is None and "undecodable message" in garbage.rejected[0].reasons[0]


def test_args_text_that_is_not_canonical_is_rejected_alone(gate: Gate, signer: Signer) -> None:
    # Signed over the text as sent, so the signature and digest hold; but an audit recomputes the
    # digest from the canonical text and would call the operation forged.
    b = BatchBuilder("gate-test", "eu")
    head = Head.of("ctr:1", "pncounter", "increment")
    for args in (b'{"n":1}', b'{"n": 1}', b'{"n":1}'):
        b.add(uuid.uuid4().hex, head, args, NOW_MS << 16)
    wire = b.encode("b", signer.key_id, NOW_MS << 16, sign_digests(bytes(b.digests), signer))
    result = gate.check(wire, 0, 0, NOW_MS)
    assert result.accepted == [0, 2]
    assert [r.index for r in result.rejected] == [1]
    assert "args_json of op 1 is not canonical JSON" in result.rejected[0].reasons[0]


class CountingRules(RuleVerifier):
    """The built-in rules, counting how often the gate asks them."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self, op: Operation, rule: PrefixRule) -> tuple[list[str], float]:
        self.calls += 1
        return super().check(op, rule)


class EveryOperation:
    """A plugged-in verifier that says nothing about itself: the gate must ask it for every operation."""

    name = "every"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def check(self, op: Operation, rule: PrefixRule) -> tuple[list[str], float]:
        self.seen.append(op.op_id)
        return ([f"op {op.op_id} refused"], 0.0) if op.op_id.endswith("!") else ([], 0.5)


def test_rules_run_once_per_distinct_operation_content_and_other_verifiers_per_operation(
    signer: Signer, tmp_path: Path
) -> None:
    rules, every = CountingRules(), EveryOperation()
    gate = Gate("eu", pipelines(), view_trusting(signer), verifiers=[rules, every])
    too_big = {"n": 1e13}
    ops = [op(f"ctr:{i % 3}", op_id=f"o{i}") for i in range(6)]
    ops += [op("ctr:7", args=too_big, op_id="big1"), op("ctr:8", args=too_big, op_id="big2"), op(op_id="last!")]
    result = gate.check(signed(ops, signer), 0, 0, NOW_MS)
    assert rules.calls == 2  # {"n": 1} and {"n": 1e13}
    assert every.seen == [o.op_id for o in ops]  # every operation, for every reason
    assert result.accepted == list(range(6)) and result.confidences == [0.5] * 6
    assert [(r.index, r.op.op_id) for r in result.rejected] == [(6, "big1"), (7, "big2"), (8, "last!")]
    big1, big2, last = (r.reasons for r in result.rejected)
    assert big1 == big2 and big1[0] == "number 10000000000000.0 at args.n is out of range (|x| <= 1e+12)"
    assert big1 is not big2 and last == ["op last! refused"]


def test_telemetry_is_judged_per_operation(signer: Signer, tmp_path: Path) -> None:
    gate = Gate("eu", pipelines(), view_trusting(signer))
    points = [
        op("sensor:1", "append", {"timestamp": i, "value": 20.0 + i % 3 / 10}, crdt_type="timeseries") for i in range(30)
    ]
    spike = op("sensor:1", "append", {"timestamp": 99, "value": 5000.0}, crdt_type="timeseries")
    # The same content twice: first with no history to judge it by, then after thirty usual values.
    result = gate.check(signed([spike, *points, spike], signer), 0, 0, NOW_MS)
    assert result.accepted == list(range(31))
    assert [r.index for r in result.rejected] == [31] and "telemetry outlier" in result.rejected[0].reasons[0]


def test_an_object_id_over_1_kb_of_utf8_is_rejected_alone_with_its_size(gate: Gate, signer: Signer) -> None:
    exactly = "ctr:" + "x" * (1024 - 4)
    many_chars_few_bytes = "ctr:" + "é" * 500  # 504 characters, 1,004 bytes: fine
    multibyte = "ctr:" + "€" * 341  # 345 characters, 1,027 bytes
    huge = "ctr:" + "x" * 100_000
    ops = [op(), op(exactly), op(many_chars_few_bytes), op(multibyte), op(huge)]
    result = gate.check(signed(ops, signer), 0, 0, NOW_MS)
    assert result.accepted == [0, 1, 2]
    assert [(r.index, r.reasons) for r in result.rejected] == [
        (3, ["object id of 1027 bytes exceeds the limit of 1024 bytes (UTF-8)"]),
        (4, ["object id of 100004 bytes exceeds the limit of 1024 bytes (UTF-8)"]),
    ]
