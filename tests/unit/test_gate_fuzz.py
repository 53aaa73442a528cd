"""Fuzzing the verifier's gate (issue 19, item 6): random bytes, mutated signed batches and batches of
nonsense signed by a trusted key, each judged by the gate and held to its contract by the oracle of
tests/fuzz_messages.py (judged, never an exception; every operation one verdict; an accepted
operation obeys every pipeline rule and folds). Then one regression test per bug the fuzz found.

Reproducible: Hypothesis derandomized, each example's messages drawn from a Random seeded by it.
benchmarks/fuzz.py runs the same generator over a million messages.
"""

from __future__ import annotations

import random
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jarvis.codec import CodecError, TooLarge, encode_batch
from jarvis.codec.batch_builder import BatchBuilder, Head
from jarvis.codec.records import avro_str, canonical_args_utf8, decode_batch_record
from jarvis.codec.single_object import MAGIC, decode
from jarvis.codec.store import store
from jarvis.crdt import registry as crdt_registry
from jarvis.gate import Gate, GateResult
from jarvis.ops import Operation, OperationBatch, OperationError, validate
from jarvis.security.keys import Signer, ensure_node_key
from jarvis.security.seen_batches import SeenBatches
from jarvis.security.signing import sign_batch, sign_digests
from pipelines.loader import pipelines
from tests.fuzz_messages import NODE, Fuzzer, verdict_class, violations
from tests.trust_helpers import view_trusting

NOW_MS = int(time.time() * 1000)
FUZZ = settings(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
MESSAGES_PER_SEED = 10
# A message judged in more than this is taken for a hang (the usual is well under a millisecond).
HANG_S = 5.0


class Bench:
    def __init__(self, keys: Path) -> None:
        self.signer = ensure_node_key(NODE, keys_dir=keys)
        stranger = ensure_node_key(NODE, keys_dir=keys / "elsewhere")
        self.gate = Gate("eu", pipelines(), view_trusting(self.signer), seen=SeenBatches())
        self.fuzzer = Fuzzer(self.signer, stranger, pipelines(), NOW_MS, random.Random(19))
        self.fuzzer.fill_pool(200)
        self.judged = 0
        self.verdicts: dict[str, int] = {}
        self.reasons: set[str] = set()  # every reason given, to check each stage was reached
        self.offset = 0

    def judge(self, data: bytes, how: str = "") -> GateResult:
        self.offset += 1
        started = time.monotonic()
        try:
            result = self.gate.check(data, 0, self.offset, NOW_MS)
        except Exception as e:  # the contract: never
            raise AssertionError(f"gate raised on a {how} message {data[:200].hex()}: {e!r}") from e
        took = time.monotonic() - started
        assert took < HANG_S, f"gate took {took:.1f} s on a {how} message"
        bad = violations(self.gate, data, result, NOW_MS, self.signer)
        assert not bad, f"{how} message {data[:300].hex()}: {bad}"
        self.judged += 1
        v = verdict_class(result)
        self.verdicts[v] = self.verdicts.get(v, 0) + 1
        self.reasons.update(r[:60] for rej in result.rejected for r in rej.reasons)
        return result


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    return Bench(tmp_path_factory.mktemp("fuzz-keys"))


# Hypothesis draws operations field by field, the fuzzer signs them with the trusted key.
_known_prefixes = sorted(pipelines().rules)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_arg_names = st.sampled_from(["n", "element", "value", "vertex", "src", "dst", "to_state", "timestamp", "update",
                              "key", "type", "kind", "args", "observed", "state", "region", "to_region"])  # fmt: skip
_op = st.fixed_dictionaries({
    "op_id": st.text(max_size=40),
    "object_id": st.one_of(
        st.builds(lambda p, rest: f"{p}:{rest}", st.sampled_from(_known_prefixes), st.text(min_size=1, max_size=300)),
        st.text(max_size=20),
    ),
    "pair": st.one_of(
        st.sampled_from(sorted(crdt_registry.VALID_PAIRS)),
        st.tuples(st.sampled_from([*crdt_registry.KINDS, "nope", ""]),
                  st.sampled_from([k for ks in crdt_registry.KINDS.values() for k in ks] + ["nope", ""])),
    ),
    "args": st.dictionaries(_arg_names, _json, max_size=4),
    "node_id": st.sampled_from([NODE, NODE, NODE, "other", ""]),
    "region": st.sampled_from(["eu", "eu", "us", ""]),
    "hlc": st.one_of(
        st.just(NOW_MS << 16), st.integers(-(2**63), 2**63 - 1), st.integers((NOW_MS - 90_000_000) << 16, (NOW_MS + 400_000) << 16)
    ),
})  # fmt: skip


def _as_fields(op: dict[str, Any]) -> dict[str, Any]:
    from tests.fuzz_messages import _dumps

    rest = {k: v for k, v in op.items() if k not in ("args", "pair")}
    return {**rest, "crdt_type": op["pair"][0], "kind": op["pair"][1], "args_json": _dumps(op["args"]),
            "metadata": {}, "encrypted_fields": []}  # fmt: skip


def test_ten_thousand_fuzzed_messages_are_each_judged_by_the_rules(bench: Bench) -> None:
    @settings(FUZZ, max_examples=700)
    @given(st.integers(0, 2**64 - 1))
    def mutated_and_random(seed: int) -> None:
        bench.fuzzer.rng = random.Random(seed)
        for _ in range(MESSAGES_PER_SEED):
            how, data = bench.fuzzer.message()
            bench.judge(data, how)

    @settings(FUZZ, max_examples=1500)
    @given(
        st.binary(max_size=300), st.sampled_from([b"", MAGIC + store().schema("OperationBatch").fingerprint])
    )
    def random_bytes(body: bytes, head: bytes) -> None:
        bench.judge(head + body, "random")

    @settings(FUZZ, max_examples=1500)
    @given(st.lists(_op, min_size=1, max_size=4))
    def nonsense_signed_by_a_trusted_key(ops: list[dict[str, Any]]) -> None:
        bench.judge(bench.fuzzer.signed([_as_fields(o) for o in ops]), "trusted-nonsense")

    mutated_and_random()
    random_bytes()
    nonsense_signed_by_a_trusted_key()
    print(
        f"\n{bench.judged} fuzzed messages judged:",
        dict(sorted(bench.verdicts.items(), key=lambda kv: -kv[1])[:12]),
    )
    assert bench.judged >= 10_000
    # The generator reaches every stage of the gate, not only the decoder.
    classes = " ".join([*bench.verdicts, *bench.reasons])
    for stage in ("accepted", "undecodable", "is not trusted", "bad signature", "digest mismatch", "duplicate",
                  "unknown object prefix", "holds", "timestamp", "not canonical", "required"):  # fmt: skip
        assert stage in classes, f"no message reached {stage!r}"


# -- regressions: one per bug the fuzz found ---------------------------------------------------------


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return ensure_node_key("gate-test", keys_dir=tmp_path)


@pytest.fixture
def gate(signer: Signer, tmp_path: Path) -> Gate:
    return Gate("eu", pipelines(), view_trusting(signer))


def _builder_batch(signer: Signer, rows: list[tuple[str, str, str, bytes]]) -> bytes:
    b = BatchBuilder("gate-test", "eu")
    for object_id, crdt_type, kind, args in rows:
        # Head built by hand: Head.of would refuse the invalid ids and kinds the gate must judge.
        o, t, k = avro_str(object_id), avro_str(crdt_type), avro_str(kind)
        b.add(uuid.uuid4().hex, Head(o, t, k, o + t + k, object_id.encode()), args, NOW_MS << 16)
    return b.encode("b", signer.key_id, NOW_MS << 16, sign_digests(bytes(b.digests), signer))


def test_args_nested_deeper_than_json_can_be_written_are_rejected_with_a_reason(
    gate: Gate, signer: Signer
) -> None:
    # orjson reads 1024 levels and writes 255: such args decoded, then canonical_args raised
    # TypeError("Recursion limit reached") out of the decoder (the gate's last-resort catch).
    deep = b'{"value":' + b"[" * 300 + b"]" * 300 + b"}"
    result = gate.check(_builder_batch(signer, [("reg:1", "lww", "write", deep)]), 0, 0, NOW_MS)
    assert not result.accepted
    assert "args nest too deeply to be written as canonical JSON" in result.rejected[0].reasons[0]
    # Version 1 (an array of Operation records) goes another way through the decoder: same reason.
    shallow = Operation("o", "reg:1", "lww", "write", {"value": 1}, "gate-test", "eu", NOW_MS << 16)
    digests, sig = sign_batch([shallow], signer)
    v1 = next(
        s
        for s in store().by_fingerprint.values()
        if s.name.endswith("OperationBatch") and "ops" in s.canonical
    )
    import io

    from fastavro import schemaless_writer

    buf = io.BytesIO()
    buf.write(MAGIC + v1.fingerprint)
    record = {"batch_id": "b", "node_id": "gate-test", "key_id": signer.key_id, "region": "eu", "created_hlc": 0,
              "op_digests": digests, "signature": sig,
              "ops": [{"op_id": "o", "object_id": "reg:1", "crdt_type": "lww", "kind": "write",
                       "args_json": deep.decode(), "node_id": "gate-test", "region": "eu", "hlc": NOW_MS << 16,
                       "metadata": {}, "encrypted_fields": []}]}  # fmt: skip
    schemaless_writer(buf, v1.parsed, record)
    result = gate.check(buf.getvalue(), 0, 1, NOW_MS)
    assert "args nest too deeply" in result.rejected[0].reasons[0]


@pytest.mark.parametrize(
    ("object_id", "crdt_type", "kind", "args", "reason"),
    [
        ("ts:1", "timeseries", "append", b'{"value":1}', "args.timestamp is required for append"),
        (
            "ts:1",
            "timeseries",
            "append",
            b'{"timestamp":"x","value":1}',
            "args.timestamp must be a finite number",
        ),
        ("gs:1", "gset", "add", b"{}", "args.element is required for add"),
        ("ors:1", "orset", "remove", b'{"value":1}', "args.element is required for remove"),
        ("g:1", "graph", "add_edge", b'{"src":"a"}', "args.dst is required for add_edge"),
        ("g:1", "graph", "add_vertex", b'{"vertex":1}', "args.vertex must be a string, got int"),
        ("reg:1", "lww", "write", b"{}", "args.value is required for write"),
    ],
)
def test_a_signed_operation_without_the_arguments_its_type_declares_is_rejected(
    gate: Gate, signer: Signer, object_id: str, crdt_type: str, kind: str, args: bytes, reason: str
) -> None:
    # The gate checked sizes, ranges and the type's own rules, but not the registry's declared
    # arguments: these were accepted, then the fold failed them ("fold cannot apply add: 'element'").
    good = ("ctr:1", "pncounter", "increment", b'{"n":1}')
    result = gate.check(_builder_batch(signer, [good, (object_id, crdt_type, kind, args)]), 0, 0, NOW_MS)
    assert result.accepted == [0]
    assert any(reason in r for r in result.rejected[0].reasons), result.rejected[0].reasons


def test_the_sdk_text_handle_s_extra_arguments_still_pass(gate: Gate, signer: Signer) -> None:
    # The verifier checks declared arguments only: the SDK's text insert sends index and s besides.
    from jarvis.crdt.text import Text, encode_update

    made = Text("n").insert(0, "hi")
    args = canonical_args_utf8({"index": 0, "s": "hi", "update": encode_update(made.update or b"")})
    result = gate.check(_builder_batch(signer, [("txt:1", "text", "insert", args)]), 0, 0, NOW_MS)
    assert result.accepted == [0], result.rejected


def test_an_object_id_ending_in_a_newline_is_invalid(gate: Gate, signer: Signer) -> None:
    # OBJECT_ID.match let "ctr:1\n" through ("$" matches before a final newline) and the gate
    # accepted it; the ingest gateway refused it.
    with pytest.raises(OperationError):
        validate("ctr:1\n", "pncounter", "increment")
    validate("ctr:1", "pncounter", "increment")
    result = gate.check(
        _builder_batch(signer, [("ctr:1\n", "pncounter", "increment", b'{"n":1}')]), 0, 0, NOW_MS
    )
    assert not result.accepted and "must look like '<prefix>:<id>'" in result.rejected[0].reasons[0]


def test_an_lz4_bomb_is_refused_without_inflating_it(signer: Signer) -> None:
    # A 4 MB frame of zeros expands to 1 GB: decompress() inflated it whole before checking the size.
    comp = lz4.frame.LZ4FrameCompressor()
    zeros = b"\x00" * (1 << 20)
    frame = (
        comp.begin()
        + comp.compress(MAGIC)
        + b"".join(comp.compress(zeros) for _ in range(1024))
        + comp.flush()
    )
    assert len(frame) < 8 << 20
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge, match="expands to more than"):
            decode(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, f"decoding the bomb allocated {peak >> 20} MB"


def test_a_message_of_another_schema_is_named_before_its_body_is_read(signer: Signer) -> None:
    ops = [Operation("o", "ctr:1", "pncounter", "increment", {"n": 1}, "gate-test", "eu", NOW_MS << 16)]
    digests, sig = sign_batch(ops, signer)
    wire = bytearray(
        encode_batch(OperationBatch("b", "gate-test", signer.key_id, "eu", 0, ops, digests, sig))
    )
    wire[2:10] = store().schema("FoldDecisions").fingerprint
    with pytest.raises(CodecError, match="expected an OperationBatch, got a io.jarvis.v1.FoldDecisions"):
        decode_batch_record(bytes(wire))
