from __future__ import annotations

import io
import json
import struct
import uuid

import avro.io
import avro.schema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.codec import (
    CodecError,
    NotSingleObject,
    TruncatedBody,
    UnknownSchema,
    decode,
    decode_batch,
    decode_op,
    decode_verified,
    decode_verified_runs,
    encode,
    encode_batch,
    encode_op,
    encode_verified,
    store,
)
from jarvis.codec.fingerprint import crc64_avro
from jarvis.codec.records import batch_record, expand_refs, op_record
from jarvis.codec.store import SCHEMA_DIR
from jarvis.ops import KINDS_BY_TYPE, Dot, Operation, OperationBatch, VerifiedBatch

ARGS = {
    "increment": {"n": 3},
    "decrement": {"n": 2},
    "add": {"element": "x"},
    "remove": {"element": "x"},
    "write": {"value": {"nested": [1, 2.5, "z"]}, "category": "security"},
    "append": {"timestamp": 1.7e9, "value": 3.25, "metadata": {"device": "d1"}},
    "add_vertex": {"vertex": "a"},
    "remove_vertex": {"vertex": "a"},
    "add_edge": {"src": "a", "dst": "b"},
    "remove_edge": {"src": "a", "dst": "b"},
    "transition": {"to_state": "approved", "args": {"by": "ada"}},
    "transfer": {"n": 4, "to_region": "us"},
    "decided": {"region": "eu", "state": {"min": 0, "p": {"eu": {"eu": 5}}, "d": {"eu": 1}, "seqs": {}}, "want": 0},
    "insert": {"index": 0, "s": "hé", "update": "AQ=="},
    "delete": {"index": 0, "n": 1, "update": "AQ=="},
    "update": {"key": "name", "type": "register", "kind": "write", "args": {"value": "ada"}},
}


def make_op(crdt_type: str = "pncounter", kind: str = "increment", **kw: object) -> Operation:
    fields = dict(
        op_id=uuid.uuid4().hex, object_id="obj:1", crdt_type=crdt_type, kind=kind, args=ARGS[kind],
        node_id="n1", region="eu", hlc=(1_700_000_000_000 << 16) | 5, metadata={"m": "1"},
    )  # fmt: skip
    fields.update(kw)
    return Operation(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("crdt_type", "kind"), [(t, k) for t, ks in KINDS_BY_TYPE.items() for k in ks])
def test_every_operation_kind_round_trips(crdt_type: str, kind: str) -> None:
    op = make_op(crdt_type, kind)
    assert decode_op(encode_op(op)) == op


def test_batches_round_trip_plain_and_lz4() -> None:
    ops = [make_op() for _ in range(50)]
    batch = OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 32 * 50, b"sig")
    assert decode_batch(encode_batch(batch)) == batch
    compressed = encode_batch(batch, compress=True)
    assert compressed[:4] == b"\x04\x22\x4d\x18"
    assert decode_batch(compressed) == batch


def test_verified_batch_carries_the_signed_message_and_names_the_accepted_operations() -> None:
    ops = [make_op() for _ in range(5)]
    original = encode_batch(OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 32 * 5, b"sig"))
    data = encode_verified("us", 3, 41, [0, 2, 4], [1.0, 0.5, 0.25], original)
    assert original in data  # the producer's bytes, untouched
    assert decode_verified(data) == VerifiedBatch(
        "b1", "n1", "k1", "us", b"\x01" * 32 * 5, b"sig", [0, 2, 4],
        [Dot("us", 3, 41, 0), Dot("us", 3, 41, 2), Dot("us", 3, 41, 4)], [1.0, 0.5, 0.25],
        [ops[0], ops[2], ops[4]],
    )  # fmt: skip
    with pytest.raises(CodecError, match="outside the batch of 5"):
        decode_verified(encode_verified("us", 3, 41, [5], [1.0], original))


def test_verified_batch_of_the_first_version_is_still_read() -> None:
    from fastavro import schemaless_writer

    old = store().writer(_fingerprint_of(SCHEMA_DIR / "history" / "VerifiedBatch.v1.avsc"))
    ops = [make_op(), make_op()]
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + old.fingerprint)
    schemaless_writer(buf, old.parsed, {
        "batch_id": "b1", "node_id": "n1", "key_id": "k1", "origin_region": "eu",
        "op_digests": b"\x02" * 64, "signature": b"s", "indexes": [0, 1],
        "dots": [{"origin_region": "eu", "partition": 1, "offset": 5, "index": i} for i in (0, 1)],
        "confidences": [1.0, 0.5], "ops": [op_record(o) for o in ops],
    })  # fmt: skip
    vb = decode_verified(buf.getvalue())
    assert vb.ops == ops and vb.dots == [Dot("eu", 1, 5, 0), Dot("eu", 1, 5, 1)] and vb.batch_id == "b1"


def _fingerprint_of(path: object) -> bytes:
    """The fingerprint the store computed for a schema file."""
    return next(fp for fp, s in store().by_fingerprint.items() if s.path == path)


def test_single_object_header_follows_the_spec() -> None:
    data = encode_op(make_op())
    assert data[:2] == b"\xc3\x01"
    canonical = store().schema("Operation").canonical
    assert data[2:10] == struct.pack("<Q", crc64_avro(canonical.encode()))


def test_crc64_avro_of_empty_input_is_the_spec_constant() -> None:
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def _apache_schemas() -> avro.schema.Names:
    names = avro.schema.Names()
    for name in ("Dot", "Operation"):
        avro.schema.make_avsc_object(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text()), names)
    return names


def test_independent_decoder_reads_our_messages_using_only_schemas_dir() -> None:
    # Apache's avro package, not fastavro: header checked by hand, body by avro.io.
    op = make_op("workflow", "transition")
    data = encode_op(op)
    names = _apache_schemas()
    schema = names.get_name("io.jarvis.v1.Operation", None)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == struct.pack("<Q", crc64_avro(schema.canonical_form.encode()))
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert record["object_id"] == op.object_id
    assert json.loads(record["args_json"]) == op.args
    assert record["hlc"] == op.hlc


def test_message_from_an_older_schema_version_is_read_by_the_current_reader() -> None:
    v1 = json.loads((SCHEMA_DIR / "history" / "Operation.v1.avsc").read_text())
    from fastavro import parse_schema, schemaless_writer
    from fastavro.schema import to_parsing_canonical_form

    parsed = parse_schema(v1)
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + struct.pack("<Q", crc64_avro(to_parsing_canonical_form(parsed).encode())))
    schemaless_writer(buf, parsed, {
        "op_id": "old", "object_id": "ctr:1", "crdt_type": "pncounter", "kind": "increment",
        "args_json": '{"n":1}', "node_id": "n", "region": "eu", "hlc": 1,
    })  # fmt: skip
    name, record = decode(buf.getvalue(), "Operation")
    assert record["op_id"] == "old"
    assert record["metadata"] == {} and record["encrypted_fields"] == []  # new fields take their defaults


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", NotSingleObject, "empty"),
        (b"garbage bytes here", NotSingleObject, "not an Avro single-object"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", UnknownSchema, "unknown schema fingerprint 0000000000000000"),
    ],
)
def test_bad_bytes_raise_clear_errors(data: bytes, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        decode(data)


def test_truncated_body_raises_a_clear_error() -> None:
    data = encode_op(make_op())
    with pytest.raises(TruncatedBody, match="malformed io.jarvis.v1.Operation body"):
        decode(data[: len(data) - 7])


def test_wrong_record_type_is_refused() -> None:
    with pytest.raises(CodecError, match="expected an OperationBatch"):
        decode_batch(encode_op(make_op()))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["write"]),
    value=json_values,
    node=st.text(min_size=1, max_size=12),
    hlc=st.integers(min_value=0, max_value=2**62),
)
def test_random_register_operations_round_trip(kind: str, value: object, node: str, hlc: int) -> None:
    op = make_op("lww", kind, args={"value": value}, node_id=node, hlc=hlc)
    assert decode_op(encode_op(op)) == op


def test_encode_refuses_unknown_record_names() -> None:
    with pytest.raises(UnknownSchema):
        encode("NoSuchRecord", {})


TEXT = st.text(max_size=40)


@given(
    ids=st.tuples(TEXT, TEXT, TEXT),
    args=st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.integers(-(2**62), 2**62), TEXT, st.floats(allow_nan=False)),
        max_size=4,
    ),
    hlc=st.integers(-(2**63), 2**63 - 1),
    metadata=st.dictionaries(TEXT, TEXT, max_size=4),
    encrypted=st.lists(TEXT, max_size=3),
)
def test_hand_written_op_content_equals_fastavro_byte_for_byte(ids, args, hlc, metadata, encrypted) -> None:
    from jarvis.codec.records import op_content, op_content_reference

    op = Operation(ids[0], "ctr:x", "pncounter", "increment", args, ids[1], ids[2], hlc, metadata, encrypted)
    assert op_content(op) == op_content_reference(op)


def test_batch_columns_keep_per_operation_metadata_and_encrypted_fields() -> None:
    ops = [make_op(metadata={}), make_op(metadata={"a": "b"}, encrypted_fields=["x"]), make_op(metadata={})]
    batch = OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 32 * 3, b"sig")
    assert decode_batch(encode_batch(batch)) == batch
    plain = [make_op(metadata={}) for _ in range(3)]
    record = batch_record(OperationBatch("b1", "n1", "k1", "eu", 7, plain, b"\x01" * 96, b"sig"))
    assert record["metadata"] == [] and record["encrypted_fields"] == []  # empty columns: all empty


def test_batch_whose_columns_differ_in_length_is_rejected() -> None:
    record = batch_record(OperationBatch("b1", "n1", "k1", "eu", 7, [make_op(), make_op()], b"\x01" * 64, b"s"))
    record["hlcs"] = record["hlcs"][:1]
    with pytest.raises(CodecError, match="columns differ in length"):
        decode_batch(encode("OperationBatch", record))


def test_repetitive_columns_travel_by_reference_each_value_once() -> None:
    ops = [make_op(object_id=f"obj:{i % 2}", metadata={}) for i in range(5)]
    record = batch_record(OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 32 * 5, b"sig"))
    assert record["object_ids"] == record["kinds"] == []
    assert sorted(record["strings"]) == sorted(["obj:0", "obj:1", "pncounter", "increment", '{"n":3}', "n1", "eu"])
    assert len(record["refs"]) == 30
    written_out = len(encode("OperationBatch", expand_refs(dict(record))))
    assert len(encode("OperationBatch", record)) < written_out * 0.8


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r.update(refs=r["refs"][:-1]), "refs holds 11 indexes for 2 operations"),
        (lambda r: r["refs"].__setitem__(3, 99), "refs point outside its 6 strings"),
        (lambda r: r["refs"].__setitem__(3, -1), "refs point outside its 6 strings"),
        (lambda r: r.update(kinds=["increment", "increment"]), "both by reference and written out"),
    ],
)
def test_references_that_do_not_fit_reject_the_batch(change, problem: str) -> None:
    record = batch_record(
        OperationBatch("b1", "n1", "k1", "eu", 7, [make_op(metadata={}), make_op(metadata={})], b"\x01" * 64, b"s")
    )
    change(record)
    with pytest.raises(CodecError, match=problem):
        decode_batch(encode("OperationBatch", record))


def test_batch_of_the_second_version_is_still_read() -> None:
    from fastavro import schemaless_writer

    old = store().writer(_fingerprint_of(SCHEMA_DIR / "history" / "OperationBatch.v2.avsc"))
    ops = [make_op(metadata={}), make_op(kind="decrement", metadata={})]
    record = expand_refs(batch_record(OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 64, b"sig")))
    del record["refs"], record["strings"]
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + old.fingerprint)
    schemaless_writer(buf, old.parsed, record)
    assert decode_batch(buf.getvalue()).ops == ops


def test_batch_of_the_first_version_is_still_read() -> None:
    from fastavro import schemaless_writer

    old = store().writer(_fingerprint_of(SCHEMA_DIR / "history" / "OperationBatch.v1.avsc"))
    ops = [make_op(), make_op(encrypted_fields=["n"])]
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + old.fingerprint)
    schemaless_writer(buf, old.parsed, {
        "batch_id": "b1", "node_id": "n1", "key_id": "k1", "region": "eu", "created_hlc": 7,
        "ops": [op_record(o) for o in ops], "op_digests": b"\x01" * 64, "signature": b"s",
    })  # fmt: skip
    assert decode_batch(buf.getvalue()) == OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 64, b"s")


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from([(t, k) for t, ks in KINDS_BY_TYPE.items() for k in ks]), min_size=1, max_size=12),
    data=st.data(),
)
def test_the_folds_rows_are_the_operations_decode_verified_reads(kinds: list[tuple[str, str]], data) -> None:
    ops = [make_op(t, k, object_id=f"obj:{i % 3}", metadata={}, hlc=(1 << 40) + i) for i, (t, k) in enumerate(kinds)]
    indexes = sorted(data.draw(st.sets(st.integers(0, len(ops) - 1), min_size=1)))
    original = encode_batch(OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 32 * len(ops), b"sig"))
    value = encode_verified("us", 3, 41, indexes, [1.0] * len(indexes), original)
    vb = decode_verified(value)
    (run,) = decode_verified_runs(value)
    assert (run.origin_region, run.partition, run.offset) == ("us", 3, 41)
    assert run.rows == [
        (d.index, o.object_id, o.crdt_type, o.kind, o.args, o.node_id, o.hlc) for o, d in zip(vb.ops, vb.dots, strict=True)
    ]


def test_the_folds_rows_of_a_first_version_message_keep_each_dot() -> None:
    from fastavro import schemaless_writer

    old = store().writer(_fingerprint_of(SCHEMA_DIR / "history" / "VerifiedBatch.v1.avsc"))
    ops = [make_op(), make_op(), make_op()]
    places = [(5, 0), (5, 1), (6, 0)]
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + old.fingerprint)
    schemaless_writer(buf, old.parsed, {
        "batch_id": "b1", "node_id": "n1", "key_id": "k1", "origin_region": "eu",
        "op_digests": b"\x02" * 96, "signature": b"s", "indexes": [0, 1, 2],
        "dots": [{"origin_region": "eu", "partition": 1, "offset": o, "index": i} for o, i in places],
        "confidences": [1.0] * 3, "ops": [op_record(o) for o in ops],
    })  # fmt: skip
    runs = decode_verified_runs(buf.getvalue())
    assert [(r.offset, [row[0] for row in r.rows]) for r in runs] == [(5, [0, 1]), (6, [0])]
    assert runs[1].rows[0][1:] == (ops[2].object_id, "pncounter", "increment", {"n": 3}, "n1", ops[2].hlc)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"kinds": ["increment", "jump"]}, "has no operation 'jump'"),
        ({"object_ids": ["obj:1", "no prefix"]}, "must look like"),
        ({"args_json": ['{"n":1}', "[1]"]}, "must be a JSON object"),
        ({"args_json": ['{"n":1}', "{"]}, "is not JSON"),
        ({"hlcs": [1]}, "columns differ in length"),
        ({"op_digests": b"\x01" * 32}, "op_digests holds 32 bytes for 2 operations"),
    ],
)
def test_the_folds_rows_reject_what_decode_verified_rejects(change: dict, problem: str) -> None:
    ops = [make_op(metadata={}), make_op(metadata={})]
    record = expand_refs(batch_record(OperationBatch("b1", "n1", "k1", "eu", 7, ops, b"\x01" * 64, b"sig"))) | change
    value = encode_verified("us", 3, 41, [0, 1], [1.0, 1.0], encode("OperationBatch", record))
    for decoder in (decode_verified, decode_verified_runs):
        with pytest.raises(CodecError, match=problem):
            decoder(value)
