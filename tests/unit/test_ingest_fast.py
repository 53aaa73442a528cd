"""The HTTP gateway's fast path (connectors/ingest/requests.py FastChecker, writer.py Row and
BatchEncoder.row_messages): whenever it answers, it writes what the general path (check_op, an
Operation per item, BatchEncoder.messages) writes for the same request, field for field and byte
for byte, and it steps aside for everything else. A retried Idempotency-Key request may take the
other path (a restarted gateway knows no objects yet), and the verifier's re-send protection
counts on the two writes being the same messages."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ingest.http import IngestApi
from connectors.ingest.writer import BatchEncoder, IngressWriter, Row
from jarvis.crdt import HLC
from jarvis.crdt import registry as crdt_registry
from jarvis.security.apikeys import ADMIN, Principal, Role
from jarvis.security.crypto import DataKeyring
from jarvis.security.keys import ensure_node_key
from pipelines.loader import pipelines

NODE = "ingest-eu-0"
ADMIN_P = Principal("ops-team", "k0", ADMIN)
COUNTERS_ONLY = Principal("device-17", "k1", Role("devices", read=("*",), write=("ctr:*",)))
KEYS = Path(tempfile.mkdtemp())
SIGNER = ensure_node_key(NODE, keys_dir=KEYS)


class Writer:
    """What IngestApi asks of an IngressWriter before anything reaches Kafka: the real encoder."""

    def __init__(self) -> None:
        self.pipelines = pipelines()
        self.hlc = HLC(NODE)
        self.node_id = NODE
        self.encoder = BatchEncoder(NODE, "eu", SIGNER, 6)
        self.partition_of = self.encoder.partition_of

        self.region = "eu"
        self.keyring = DataKeyring(KEYS)

    operation = IngressWriter.operation  # the real one: it encrypts what the pipeline says


def api() -> IngestApi:
    a = IngestApi("eu", NODE, Writer(), None, None, None)  # type: ignore[arg-type]
    a.close()  # its wait threads are not used here
    return a


def plan(n: int) -> dict[str, Any]:
    return {"nonce": "00112233aabbccdd", "ms": 1_732_520_000_123, "hlcs": [(1_732_520_000_123 << 16) + i for i in range(n)]}


def general(a: IngestApi, items: list[Any], p: Principal) -> tuple[Sequence[Any], Any]:
    """The general path alone: the fast one told to step aside."""
    rows = a.fast.rows
    a.fast.rows = lambda *args: None  # type: ignore[method-assign]
    try:
        return a._operations(items, p, plan(len(items)))
    finally:
        a.fast.rows = rows  # type: ignore[method-assign]


def same_write(a: IngestApi, items: list[Any], p: Principal) -> bool:
    """True if the fast path answered; then asserts it writes what the general path writes."""
    fast, refusal = a._operations(items, p, plan(len(items)))
    if not fast or not isinstance(fast[0], Row):
        return False
    assert refusal is None
    ops, refused = general(a, items, p)
    assert refused is None, refused  # the fast path accepted only what the general one accepts
    fields = ("op_id", "object_id", "crdt_type", "kind", "args", "hlc")
    assert [[getattr(r, f) for f in fields] for r in fast] == [[getattr(o, f) for f in fields] for o in ops]
    meta = {"principal": p.name, "via": NODE}
    assert all(o.metadata == meta for o in ops)
    enc = a.writer.encoder
    assert enc.row_messages(fast, meta, "seed") == enc.messages(ops, "seed")
    return True


USUAL = [
    {"object_id": "ctr:a", "kind": "increment", "args": {"n": 3}},
    {"object_id": "ctr:b", "kind": "decrement", "args": {"n": 1}, "type": "pncounter"},
    {"object_id": "gs:s", "kind": "add", "args": {"element": "x"}},
    {"object_id": "reg:r", "kind": "write", "args": {"value": {"a": [1, 2.5, None]}}},
    {"object_id": "ts:t", "kind": "append_data_point", "args": {"timestamp": 1732520000.5, "value": 93.1}},
    {"object_id": "wf:w", "kind": "transition", "args": {"to_state": "submitted"}},
]


def test_usual_requests_take_the_fast_path_and_write_what_the_general_path_writes() -> None:
    a = api()
    assert same_write(a, USUAL, ADMIN_P)  # objects not seen before: learnt on the way
    assert same_write(a, USUAL * 100, ADMIN_P)  # seen: 600 operations, two messages for some partitions
    assert same_write(a, [USUAL[0]] * 1200, ADMIN_P)  # one partition: messages of at most 500
    ops, _ = a._operations([USUAL[0]] * 1200, ADMIN_P, plan(1200))
    assert [len(m[3]) for m in a.writer.encoder.row_messages(ops, {}, "s")] == [500, 500, 200]  # type: ignore[arg-type]


def _is_general(a: IngestApi, items: list[Any], p: Principal) -> tuple[int, dict[str, Any]] | None:
    fast, refusal = a._operations(items, p, plan(len(items)))
    assert not (fast and isinstance(fast[0], Row))
    return refusal


def test_anything_unusual_takes_the_general_path_with_its_answer() -> None:
    a = api()
    same_write(a, USUAL, ADMIN_P)  # every object known
    cases: list[tuple[Any, int | None]] = [
        ({"object_id": "ctr:a", "kind": "increment", "args": {"n": "3"}}, 400),  # wrong type
        ({"object_id": "ctr:a", "kind": "increment", "args": {"n": 1.5}}, 400),
        ({"object_id": "ctr:a", "kind": "increment", "args": {"n": True}}, 400),
        ({"object_id": "ctr:a", "kind": "increment", "args": {"n": 1, "m": 2}}, 400),  # extra arg
        ({"object_id": "ctr:a", "kind": "explode"}, 400),
        ({"object_id": "ctr:a", "kind": "increment", "args": {"n": 1}, "extra": 1}, 400),
        ({"object_id": "ctr:a", "kind": "increment", "type": "gset"}, 400),
        ({"object_id": "ctr:a\n", "kind": "increment"}, 400),
        ({"object_id": "nosuch:a", "kind": "increment"}, 400),
        ({"object_id": "ts:t", "kind": "append", "args": {"timestamp": 1, "value": float("inf")}}, 400),
        ({"object_id": "quality:l", "kind": "append", "args": {"timestamp": 1, "value": 500}}, 400),  # rule: range
        ({"object_id": "reg:r", "kind": "write", "args": {"value": "x" * 1_000_000}}, 400),  # rule: payload
        ({"object_id": "ctr:a", "kind": "increment", "args": {"n": 2**63}}, 400),  # rule: |x| bound (an int orjson reads)
        ([1, 2], 400),
        ("ctr:a", 400),
        # Valid, but another path all the same: an encrypted field needs the Operation's encryption.
        ({"object_id": "patient:p", "kind": "write", "args": {"value": "x"}}, None),
    ]
    for item, status in cases:
        refusal = _is_general(a, [USUAL[0], item], ADMIN_P)
        assert (refusal[0] if refusal else None) == status, item
        if refusal:
            assert refusal[1]["results"][0]["status"] == "not_written"
            assert refusal[1]["results"][1]["status"] == "rejected" and refusal[1]["results"][1]["reasons"]
    # A grant that does not cover an object: the general path's 403.
    refusal = _is_general(a, [USUAL[0], USUAL[2]], COUNTERS_ONLY)
    assert refusal is not None and refusal[0] == 403
    assert same_write(a, [USUAL[0], USUAL[1]], COUNTERS_ONLY)


def test_the_fast_paths_memory_is_bounded() -> None:
    a = api()
    a.fast.max_objects = 50
    for k in range(5):
        assert same_write(a, [{"object_id": f"ctr:o{k}-{i}", "kind": "increment", "args": {"n": 1}} for i in range(40)], ADMIN_P)
        assert len(a.fast._objects) <= 50


_MORE = [
    {"object_id": "ors:s", "kind": "add", "args": {"element": 1}},
    {"object_id": "bc:s", "kind": "decrement", "args": {"n": 2}},
    {"object_id": "quality:l", "kind": "append", "args": {"timestamp": 1, "value": 50}},
]
_NEAR = [
    {"object_id": "quality:l", "kind": "append", "args": {"timestamp": 1, "value": 500}},  # refused by its rule
    {"object_id": "patient:p", "kind": "write", "args": {"value": "x"}},  # encrypted: the general path
    {"object_id": "ctr:a", "kind": "increment", "args": {"n": 1.0}},
]
_PREFIXES = ["ctr", "gs", "reg", "ts", "wf", "bc", "ors", "mp", "g", "txt", "quality", "patient", "nosuch"]
_KINDS = sorted({k for t in crdt_registry.names() for k in (*crdt_registry.SPECS[t].kinds,
                 *crdt_registry.SPECS[t].kind_aliases)} | {"nope"})  # fmt: skip
_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False),
    st.floats(), st.text(max_size=4), st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)  # fmt: skip
_ITEM = st.fixed_dictionaries(
    {
        "object_id": st.builds(lambda p, i: f"{p}:{i}", st.sampled_from(_PREFIXES), st.sampled_from(["a", "b", "c"])),
        "kind": st.sampled_from(_KINDS),
    },
    optional={
        "args": st.dictionaries(
            st.sampled_from(["n", "element", "value", "to_state", "timestamp", "tag", "src", "dst", "vertex"]),
            _VALUE, max_size=3,
        ),
        "type": st.sampled_from(sorted(crdt_registry.names())),
    },
)  # fmt: skip


# Mostly valid operations (of several objects, so a counter grant covers some), now and then anything.
_VALID = st.builds(
    lambda d, o: {**d, "object_id": d["object_id"] + o}, st.sampled_from([*USUAL, *_MORE]), st.sampled_from(["", "2", "3"])
)  # fmt: skip
_MIXED = st.integers(0, 13).flatmap(lambda k: _VALID if k < 12 else st.sampled_from(_NEAR) if k == 12 else _ITEM)


@settings(max_examples=300, deadline=None)
@given(st.lists(_MIXED, min_size=1, max_size=8), st.booleans())
def test_whenever_the_fast_path_answers_it_writes_what_the_general_path_writes(items: list[Any], grant: bool) -> None:
    a = api()
    p = COUNTERS_ONLY if grant else ADMIN_P
    for _ in range(2):  # the second time, every valid object is known
        if not same_write(a, items, p):
            fast, refusal = a._operations(items, p, plan(len(items)))
            general_ops, general_refusal = general(a, items, p)
            assert refusal == general_refusal
