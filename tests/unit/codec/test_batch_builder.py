"""The SDK's column-by-column batch writer equals the general codec byte for byte."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.codec import decode_batch, encode_batch
from jarvis.codec.batch_builder import BatchBuilder, Head
from jarvis.codec.column_digests import column_digests, decode_batch_checked
from jarvis.codec.records import avro_long, canonical_args_utf8
from jarvis.codec.single_object import decode
from jarvis.ops import KINDS_BY_TYPE, Operation, OperationBatch, OperationError
from jarvis.security.keys import Signer
from jarvis.security.signing import sign_batch, sign_digests

SIGNER = Signer("node-x", "key-1", Ed25519PrivateKey.generate())
TEXT = st.text(max_size=70)  # past 63 bytes a string's length takes two bytes
ARG_VALUES = st.one_of(
    st.integers(-(2**62), 2**62), TEXT, st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)
OPS = st.lists(
    st.tuples(
        st.sampled_from([(t, k) for t, ks in KINDS_BY_TYPE.items() for k in ks]),
        st.from_regex(r"[a-z0-9_-]{1,12}:[^\n]{1,70}", fullmatch=True),
        st.dictionaries(st.text(max_size=8), ARG_VALUES, max_size=3),
        st.one_of(st.integers(0, 2**63 - 1), st.integers(2**55, 2**62)),
    ),
    min_size=0,
    max_size=30,
)


def _fastavro_long(n: int) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, "long", n)
    return buf.getvalue()


@pytest.mark.parametrize(
    "n", [0, 1, -1, 63, 64, -64, -65, 2**55, 2**55 - 1, -(2**55), -(2**55) - 1, 2**62, 2**63 - 1, -(2**63)]
)
def test_avro_long_equals_fastavro_at_every_length_boundary(n: int) -> None:
    assert avro_long(n) == _fastavro_long(n)


@given(st.integers(-(2**63), 2**63 - 1))
def test_avro_long_equals_fastavro(n: int) -> None:
    assert avro_long(n) == _fastavro_long(n)


@settings(max_examples=150, deadline=None)
@given(
    ops=OPS, node=TEXT, region=TEXT, batch_id=TEXT, created=st.integers(0, 2**63 - 1),
    metadata=st.dictionaries(TEXT, TEXT, max_size=3),
)  # fmt: skip
def test_builder_writes_what_encode_batch_writes(ops, node, region, batch_id, created, metadata) -> None:
    signer = SIGNER
    b = BatchBuilder(node, region, metadata)
    model = []
    for i, ((crdt_type, kind), object_id, args, hlc) in enumerate(ops):
        op_id = f"op-{i}"
        b.add(op_id, Head.of(object_id, crdt_type, kind), canonical_args_utf8(args), hlc)
        model.append(Operation(op_id, object_id, crdt_type, kind, args, node, region, hlc, dict(metadata), []))
    digests, signature = sign_batch(model, signer)
    assert bytes(b.digests) == digests
    assert sign_digests(bytes(b.digests), signer) == signature
    wire = b.encode(batch_id, signer.key_id, created, signature)
    expected = OperationBatch(batch_id, node, signer.key_id, region, created, model, digests, signature)
    assert wire == encode_batch(expected)
    assert decode_batch(wire) == expected
    assert b.object_ids_list() == [o.object_id for o in model]


def test_head_refuses_what_an_operation_refuses() -> None:
    with pytest.raises(OperationError, match="has no operation"):
        Head.of("ctr:x", "gcounter", "decrement")
    with pytest.raises(OperationError, match="must look like"):
        Head.of("no-prefix", "gcounter", "increment")


@settings(max_examples=100, deadline=None)
@given(
    start=st.integers(2**55, 2**62 - 2**30),
    steps=st.lists(st.integers(0, 2**21), min_size=1, max_size=60),
)
def test_rising_timestamps_reuse_their_high_bytes_and_stay_exact(start: int, steps: list[int]) -> None:
    b = BatchBuilder("n", "eu")
    head = Head.of("ctr:x", "pncounter", "increment")
    hlc, model = start, []
    for i, step in enumerate(steps):
        hlc += step
        b.add(f"op-{i}", head, b'{"n":1}', hlc)
        model.append(Operation(f"op-{i}", "ctr:x", "pncounter", "increment", {"n": 1}, "n", "eu", hlc, {}, []))
    digests, signature = sign_batch(model, SIGNER)
    assert bytes(b.digests) == digests
    expected = OperationBatch("b", "n", SIGNER.key_id, "eu", 1, model, digests, signature)
    assert b.encode("b", SIGNER.key_id, 1, signature) == encode_batch(expected)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, node=TEXT, region=TEXT, base=st.integers(0, 2**62), step=st.integers(0, 5000))
def test_column_digests_equal_the_digests_operation_by_operation(ops, node, region, base, step) -> None:
    # Every other timestamp close to the one before: the high bytes of their varints are reused.
    model = [
        Operation(
            f"op-{i}-{'x' * (i * 7 % 80)}", object_id, crdt_type, kind, args, node, region,
            hlc if i % 2 else base + i * step, {}, [],
        )  # fmt: skip
        for i, ((crdt_type, kind), object_id, args, hlc) in enumerate(ops)
    ]
    digests, signature = sign_batch(model, SIGNER)
    wire = encode_batch(OperationBatch("b", node, SIGNER.key_id, region, 1, model, digests, signature))
    cols, hashed, noncanonical = decode_batch_checked(wire)
    assert hashed == digests and noncanonical == []
    assert cols.ops() == model


def test_column_digests_leave_batches_with_metadata_to_the_general_path() -> None:
    model = [Operation("o1", "ctr:1", "pncounter", "increment", {"n": 1}, "n", "eu", 5, {"k": "v"}, ["n"])]
    digests, signature = sign_batch(model, SIGNER)
    wire = encode_batch(OperationBatch("b", "n", SIGNER.key_id, "eu", 1, model, digests, signature))
    assert column_digests(decode(wire)[1]) is None
    assert decode_batch_checked(wire)[1] == digests
