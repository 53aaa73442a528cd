"""The verifier's gate on signed batches built as the SDK builds them (keys in a temporary dir)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pytest

from jarvis.codec import encode_batch
from jarvis.codec.batch_builder import BatchBuilder, Head
from jarvis.gate import Gate
from jarvis.ops import Operation, OperationBatch
from jarvis.security.keys import Signer, TrustStore, ensure_node_key
from jarvis.security.signing import sign_batch, sign_digests
from pipelines.loader import pipelines

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return ensure_node_key("gate-test", keys_dir=tmp_path, trust_regions=["eu"])


@pytest.fixture
def gate(signer: Signer, tmp_path: Path) -> Gate:
    return Gate("eu", pipelines(), TrustStore(tmp_path))


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
    assert [(a.index, a.op, a.confidence) for a in result.accepted] == [(i, o, 1.0) for i, o in enumerate(ops)]


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
    assert [a.index for a in result.accepted] == [0, 2]
    assert len(result.rejected) == 1 and result.rejected[0].index == 1
    assert any(reason in r for r in result.rejected[0].reasons), result.rejected[0].reasons


def test_content_altered_after_signing_is_caught_per_operation(gate: Gate, signer: Signer) -> None:
    ops = [op(), op(), op()]
    forged = dataclasses.replace(ops[1], args={"n": 1000})
    result = gate.check(signed(ops, signer, tamper={1: forged}), 0, 0, NOW_MS)
    assert [a.index for a in result.accepted] == [0, 2]
    assert "digest mismatch for op 1" in result.rejected[0].reasons[0]


def test_untrusted_signer_and_garbage_reject_everything(gate: Gate, tmp_path: Path) -> None:
    stranger = ensure_node_key("gate-test", keys_dir=tmp_path / "elsewhere", trust_regions=["eu"])
    result = gate.check(signed([op(), op()], stranger), 0, 0, NOW_MS)
    assert not result.accepted and len(result.rejected) == 2
    assert "untrusted key" in result.rejected[0].reasons[0]
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
    assert [a.index for a in result.accepted] == [0, 2]
    assert [r.index for r in result.rejected] == [1]
    assert "args_json of op 1 is not canonical JSON" in result.rejected[0].reasons[0]
