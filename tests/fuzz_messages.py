"""Random and mutated ingress messages for fuzzing the verifier's gate, and the oracle that judges
what the gate made of each (tests/unit/test_gate_fuzz.py, benchmarks/fuzz.py).

Messages come from a seeded `random.Random`, so a run is reproducible from its seed, and cheap to
make: most are byte-level mutations of a pool of signed batches, the rest random bytes or fresh
batches built field by field (any string in any column, signed by the trusted key or not). The
oracle holds the gate to its contract: every message is judged (accepted or rejected with a
reason, never an exception), every operation of a decoded batch gets exactly one verdict, and an
accepted operation satisfies every rule of the pipeline, checked again here the slow way (signature,
digest, signer, prefix and type, id length, replay window, canonical args, the type's declared
arguments) and folds into a fresh object without the fold refusing it.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lz4.frame
import orjson
from fastavro import schemaless_writer

from jarvis.codec import encode_verified
from jarvis.codec.records import avro_long, avro_str, canonical_args, decode_verified_runs, op_content
from jarvis.codec.single_object import LZ4_MAGIC, MAGIC
from jarvis.codec.store import store
from jarvis.crdt import registry as crdt_registry
from jarvis.gate import Gate, GateResult
from jarvis.json_ops import check_args
from jarvis.materialize import fold_run
from jarvis.ops import OBJECT_ID, object_id_too_long
from jarvis.security.keys import Signer
from jarvis.security.replay_window import check_window
from jarvis.security.signing import SignatureError, verify_batch
from pipelines.loader import Pipelines, object_factory

REGION = "eu"
NODE = "fuzz-node"

# Arguments each (type, kind) accepts, as the SDK sends them: the valid operations mutations start from.
GOOD_ARGS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("pncounter", "increment"): [{"n": 1}, {"n": 5}, {}],
    ("pncounter", "decrement"): [{"n": 2}],
    ("gcounter", "increment"): [{"n": 3}],
    ("gset", "add"): [{"element": "a"}, {"element": 7}, {"element": {"x": [1, 2]}}],
    ("orset", "add"): [{"element": "x"}],
    ("orset", "remove"): [{"element": "x"}],
    ("lww", "write"): [{"value": 1}, {"value": {"a": "b"}}, {"value": None}],
    ("timeseries", "append"): [{"timestamp": 1700000000.5, "value": 3.5}],
    ("graph", "add_vertex"): [{"vertex": "v1"}],
    ("graph", "add_edge"): [{"src": "v1", "dst": "v2"}],
    ("graph", "remove_edge"): [{"src": "v1", "dst": "v2"}],
    ("workflow", "transition"): [{"args": {}, "to_state": "submitted"}],
    ("bcounter", "increment"): [{"n": 4}],
}

_NASTY_STRINGS = [
    "",
    ":",
    "a:",
    ":b",
    "A:1",
    "ctr:\n",
    "ctr:1\n",
    "ctr:\x00",
    "ctr:" + "é" * 300,
    "ctr:" + "x" * 2000,
    "ctr:" + "\U0001f600" * 257,
    "nope:1",
    "ctr",
    "\ufeffctr:1",
    "ctr:1 ",
    " ctr:1",
    "x" * 5000,
    "pncounter",
    "increment",
    "{}",
    "null",
    "ctr:1",
    "g:1",
    "wf:1",
    "mp:1",
    "txt:1",
    "bc:1",
]
_NASTY_ARGS = [
    "",
    "{",
    "}",
    "[]",
    "[1]",
    "1",
    "null",
    "true",
    '"s"',
    "{}",
    '{"n":1',
    '{"n":NaN}',
    '{"n":Infinity}',
    '{"n":1e400}',
    '{"n":-1}',
    '{"n":1.5}',
    '{"n":true}',
    '{"n":"1"}',
    '{"n":1e13}',
    '{"n":12345678901234567890}',
    '{"n": 1}',
    '{"b":1,"a":2}',
    '{"n":1,"n":2}',
    '{"a":"\\ud800"}',
    '{"a":"\\u0000"}',
    '{"element":[]}',
    '{"element":{}}',
    '{"element":null}',
    '{"vertex":1}',
    '{"vertex":null}',
    '{"src":"a"}',
    '{"to_state":7}',
    '{"to_state":"nowhere"}',
    '{"timestamp":"x","value":1}',
    '{"timestamp":1}',
    '{"value":1e300}',
    '{"key":"k","kind":"increment","type":"pncounter"}',
    '{"key":1,"kind":"x","type":"y"}',
    '{"update":"!!"}',
    '{"update":""}',
    '{"observed":{},"key":"k"}',
    '{"state":{},"region":"eu"}',
    '{"n":1,"to_region":""}',
    "[" * 300 + "]" * 300,
    '{"a":' * 300 + "1" + "}" * 300,
    '{"a":' * 2000 + "1" + "}" * 2000,
    '{"x":"' + "y" * 20000 + '"}',
    '{"metadata":null,"timestamp":1,"value":1}',
    '{"args":null,"to_state":"draft"}',
]


def _rand_text(rng: random.Random, n: int) -> str:
    pick = rng.random()
    if pick < 0.6:
        return "".join(rng.choices(string.ascii_lowercase + string.digits + ":_-", k=n))
    if pick < 0.9:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(n))
    return "".join(
        chr(rng.choice((rng.randrange(0, 0x20), rng.randrange(0xE000, 0x10FFFF)))) for _ in range(n)
    )


def _rand_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 3 or r < 0.45:
        return rng.choice([
            0, 1, -1, rng.randrange(-(2**70), 2**70), rng.uniform(-1e15, 1e15), True, False, None, "",
            _rand_text(rng, rng.randrange(0, 12)), 1e12, -1e12, 1e12 + 1,
        ])  # fmt: skip
    if r < 0.7:
        return [_rand_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ["n", "element", "value", "vertex", "src", "dst", "to_state", "timestamp", "args", "key", "x", ""]
    return {rng.choice(keys): _rand_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _dumps(obj: Any) -> str:
    """Sorted, compact JSON of anything, integers past 64 bits included (which orjson refuses)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content(
    op_id: str, object_id: str, crdt_type: str, kind: str, args_json: str, node: str, region: str, hlc: int,
    metadata: dict[str, str] | None = None, encrypted: list[str] | None = None,
) -> bytes:  # fmt: skip
    """op_content for any field values, the args as the text given (records.op_content's layout)."""
    parts = [avro_str(x) for x in (op_id, object_id, crdt_type, kind, args_json, node, region)]
    parts.append(avro_long(hlc))
    if metadata:
        parts.append(avro_long(len(metadata)))
        parts += [avro_str(x) for kv in metadata.items() for x in kv]
    parts.append(b"\x00")
    if encrypted:
        parts.append(avro_long(len(encrypted)))
        parts += [avro_str(x) for x in encrypted]
    parts.append(b"\x00")
    return b"".join(parts)


@dataclass
class Fuzzer:
    """Makes messages for one gate: its trusted `signer`, a stranger's key, the pipelines' prefixes."""

    signer: Signer
    stranger: Signer
    pipes: Pipelines
    now_ms: int
    rng: random.Random
    pool: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_type: dict[str, list[str]] = {}
        for prefix, rule in self.pipes.rules.items():
            self._by_type.setdefault(rule.crdt_type, []).append(prefix)
        self._pairs = sorted(crdt_registry.VALID_PAIRS)
        self._good = [(t, k) for t, k in GOOD_ARGS if t in self._by_type]
        self._schemas = store()
        self._fingerprints = list(self._schemas.by_fingerprint)
        self._v1 = next(
            s for s in self._schemas.by_fingerprint.values()
            if s.name.endswith("OperationBatch") and "ops" in str(s.canonical)
        )  # fmt: skip

    # -- operations and batches, field by field ------------------------------------------------

    def _good_op(self) -> dict[str, Any]:
        t, k = self.rng.choice(self._good)
        prefix = self.rng.choice(self._by_type[t])
        args = self.rng.choice(GOOD_ARGS[(t, k)])
        if t == "workflow":
            rule = self.pipes.rules[prefix]
            args = {"args": {}, "to_state": self.rng.choice(rule.workflow.states)}  # type: ignore[union-attr]
        return {
            "op_id": f"{self.rng.getrandbits(64):016x}", "object_id": f"{prefix}:{self.rng.randrange(50)}",
            "crdt_type": t, "kind": k, "args_json": canonical_args(args), "node_id": NODE, "region": REGION,
            "hlc": self.now_ms << 16 | self.rng.randrange(1 << 16), "metadata": {}, "encrypted_fields": [],
        }  # fmt: skip

    def _mutate_op(self, op: dict[str, Any]) -> None:
        rng = self.rng
        what = rng.randrange(14)
        if what == 0:
            op["object_id"] = rng.choice(_NASTY_STRINGS)
        elif what == 1:
            op["object_id"] = f"{rng.choice(list(self.pipes.rules))}:{_rand_text(rng, rng.randrange(1, 400))}"
        elif what == 2:
            op["crdt_type"], op["kind"] = rng.choice(self._pairs)
        elif what == 3:
            op["crdt_type"] = rng.choice([*crdt_registry.KINDS, "nope", "", "PNCOUNTER", _rand_text(rng, 5)])
        elif what == 4:
            op["kind"] = rng.choice(
                ["nope", "", "write", "transition", "decided", "transfer", _rand_text(rng, 6)]
            )
        elif what == 5:
            op["args_json"] = rng.choice(_NASTY_ARGS)
        elif what == 6:
            op["args_json"] = _dumps(_rand_json(rng))
        elif what == 7:
            obj = _rand_json(rng)
            op["args_json"] = _dumps(obj if isinstance(obj, dict) else {"value": obj})
        elif what == 8:
            op["node_id"] = rng.choice(["", "other", NODE + " ", _rand_text(rng, 8)])
        elif what == 9:
            op["region"] = rng.choice(["", "us", _rand_text(rng, 4)])
        elif what == 10:
            op["hlc"] = rng.choice([
                0, -1, -(2**63), 2**63 - 1, (self.now_ms - 3 * 86_400_000) << 16, (self.now_ms + 3_600_000) << 16,
                (self.now_ms + 299_000) << 16, (self.now_ms - 86_399_000) << 16, rng.randrange(-(2**63), 2**63),
            ])  # fmt: skip
        elif what == 11:
            op["metadata"] = {_rand_text(rng, 3): _rand_text(rng, 5) for _ in range(rng.randrange(1, 3))}
        elif what == 12:
            op["encrypted_fields"] = rng.choice([["value"], ["n"], [""], ["value", "value"]])
        else:
            op["op_id"] = rng.choice(["", "x" * 3000, _rand_text(rng, 10)])

    def batch(self, n: int | None = None, nonsense: float = 0.5) -> bytes:
        """A freshly signed batch; each operation mutated with probability `nonsense`."""
        rng = self.rng
        n = rng.choice((0, 1, 1, 2, 3, 5, 8, 40)) if n is None else n
        ops = [self._good_op() for _ in range(n)]
        for op in ops:
            while rng.random() < nonsense:
                self._mutate_op(op)
        if ops and rng.random() < 0.1:  # the same operation twice, or two sharing an op id
            ops.append(dict(ops[0]) if rng.random() < 0.5 else {**ops[-1], "op_id": ops[0]["op_id"]})
        return self._encode(ops)

    def signed(self, ops: list[dict[str, Any]]) -> bytes:
        """A v3 batch of exactly these operations (fields as in `_good_op`), honestly signed by the
        trusted key."""
        return self._encode(ops, faults=False)

    def _encode(self, ops: list[dict[str, Any]], faults: bool = True) -> bytes:
        rng = self.rng if faults else random.Random(0)
        digests = b"".join(
            hashlib.sha256(content(
                o["op_id"], o["object_id"], o["crdt_type"], o["kind"], o["args_json"], o["node_id"], o["region"],
                o["hlc"], o["metadata"], o["encrypted_fields"],
            )).digest()
            for o in ops
        )  # fmt: skip
        who = self.signer if not faults or rng.random() < 0.9 else self.stranger
        signature = who.sign(hashlib.sha256(digests).digest())
        sig_fault = rng.randrange(20) if faults else -1
        if sig_fault == 0:
            signature = rng.randbytes(rng.choice((0, 63, 64, 65)))
        elif sig_fault == 1 and digests:  # an operation altered after signing
            i = rng.randrange(len(ops))
            ops[i] = {**ops[i], "args_json": canonical_args({"n": 1000})}
        elif sig_fault == 2:
            digests = digests[: rng.randrange(len(digests) + 1)] + rng.randbytes(rng.randrange(3))
            signature = who.sign(hashlib.sha256(digests).digest())
        node = NODE if not faults or rng.random() < 0.95 else rng.choice(["", "other"])
        key_id = (
            who.key_id
            if not faults or rng.random() < 0.97
            else rng.choice(["", "0" * 16, _rand_text(rng, 16)])
        )
        head = {
            "batch_id": f"b{rng.getrandbits(32):x}", "node_id": node, "key_id": key_id, "region": REGION,
            "created_hlc": self.now_ms << 16, "op_digests": digests, "signature": signature,
        }  # fmt: skip
        form = rng.randrange(10) if faults else 9
        if form == 0:  # version 1: an array of Operation records
            record = {**head, "ops": [dict(o) for o in ops]}
            buf = io.BytesIO()
            buf.write(MAGIC + self._v1.fingerprint)
            schemaless_writer(buf, self._v1.parsed, record)
            return buf.getvalue()
        cols = {
            "op_ids": [o["op_id"] for o in ops], "object_ids": [o["object_id"] for o in ops],
            "crdt_types": [o["crdt_type"] for o in ops], "kinds": [o["kind"] for o in ops],
            "args_json": [o["args_json"] for o in ops], "node_ids": [o["node_id"] for o in ops],
            "regions": [o["region"] for o in ops], "hlcs": [o["hlc"] for o in ops],
            "metadata": [o["metadata"] for o in ops] if any(o["metadata"] for o in ops) else [],
            "encrypted_fields": [o["encrypted_fields"] for o in ops] if any(o["encrypted_fields"] for o in ops) else [],
            "strings": [], "refs": [],
        }  # fmt: skip
        ref_columns = ("object_ids", "crdt_types", "kinds", "args_json", "node_ids", "regions")
        if form >= 4:  # version 3: the repetitive columns by reference, as the SDK writes them
            index: dict[str, int] = {}
            refs = [index.setdefault(cols[c][i], len(index)) for i in range(len(ops)) for c in ref_columns]
            cols["strings"], cols["refs"] = list(index), refs
            for c in ref_columns:
                cols[c] = []
            fault = rng.randrange(12) if faults else -1
            if fault == 0 and refs:
                refs[rng.randrange(len(refs))] = rng.choice((-1, len(index), 2**31 - 1, -(2**31)))
            elif fault == 1 and refs:  # fields swapped: references shuffled
                rng.shuffle(refs)
            elif fault == 2:
                del refs[rng.randrange(len(refs) + 1) :]
            elif fault == 3 and ops:
                cols["object_ids"] = [ops[0]["object_id"]]  # given both ways
        if faults and rng.random() < 0.05:  # columns of different lengths
            c = rng.choice([*ref_columns, "op_ids", "hlcs", "metadata", "encrypted_fields"])
            cols[c] = (
                [*cols[c], cols[c][0]]
                if cols[c]
                else (
                    [{}]
                    if c == "metadata"
                    else [[]]
                    if c == "encrypted_fields"
                    else [0]
                    if c == "hlcs"
                    else ["x"]
                )
            )  # noqa: E501
        buf = io.BytesIO()
        s = self._schemas.schema("OperationBatch")
        buf.write(MAGIC + s.fingerprint)
        schemaless_writer(buf, s.parsed, {**head, **cols})
        return buf.getvalue()

    # -- byte-level mutations -------------------------------------------------------------------

    def mutate_bytes(self, data: bytes) -> bytes:
        rng = self.rng
        b = bytearray(data)
        what = rng.randrange(13)
        if what == 0 and b:  # bit flips
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif what == 1:  # truncation
            del b[rng.randrange(len(b) + 1) :]
        elif what == 2:  # extension
            b += rng.randbytes(rng.randrange(1, 20))
        elif what == 3:  # bytes inserted
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randrange(1, 8))
        elif what == 4 and b:  # bytes removed
            i = rng.randrange(len(b))
            del b[i : i + rng.randrange(1, 8)]
        elif what == 5:  # another schema's fingerprint, or none
            b[2:10] = rng.choice(self._fingerprints) if rng.random() < 0.7 else rng.randbytes(8)
        elif what == 6:  # a huge count or length where a varint was
            i = rng.randrange(10, max(11, len(b)))
            huge = rng.choice(
                (
                    b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                    b"\xff\xff\xff\xff\x0f",
                    b"\x81\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
                    b"\x7f",
                    b"\x01",
                )
            )  # noqa: E501
            b[i : i + 1] = huge
        elif what == 7:  # invalid UTF-8 in a string
            i = rng.randrange(10, max(11, len(b)))
            b[i : i + 1] = rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\x80"))
        elif what == 8:  # inside an lz4 frame, maybe broken
            b = bytearray(lz4.frame.compress(bytes(b)))
            if rng.random() < 0.5:
                del b[rng.randrange(4, len(b)) :]
        elif what == 9:  # an lz4 header on anything
            b[0:0] = LZ4_MAGIC
        elif what == 10 and self.pool:  # two messages spliced
            other = rng.choice(self.pool)
            b = b[: rng.randrange(len(b) + 1)] + bytearray(other[rng.randrange(len(other) + 1) :])
        elif what == 11:  # a segment repeated
            i = rng.randrange(len(b) + 1)
            j = min(len(b), i + rng.randrange(1, 40))
            b[j:j] = b[i:j] * rng.randrange(1, 4)
        else:  # the Confluent framing, which needs a registry
            b[0:10] = b"\x00" + rng.randbytes(4)
        return bytes(b)

    def random_bytes(self) -> bytes:
        rng = self.rng
        body = rng.randbytes(rng.choice((0, 1, 5, 20, 100, 400)))
        r = rng.random()
        if r < 0.5:  # past the header: random Avro for the batch schema
            return MAGIC + self._schemas.schema("OperationBatch").fingerprint + body
        if r < 0.6:
            return MAGIC + rng.choice(self._fingerprints) + body
        return body

    def message(self) -> tuple[str, bytes]:
        """One message and the name of how it was made."""
        r = self.rng.random()
        if r < 0.1 or not self.pool:
            return "random", self.random_bytes()
        if r < 0.45:
            return "fresh", self.batch(nonsense=self.rng.choice((0.1, 0.3, 0.6)))
        if r < 0.5:
            return "replay", self.rng.choice(self.pool)  # seen before: a re-send
        data = self.rng.choice(self.pool)
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            data = self.mutate_bytes(data)
        return "mutated", data

    def fill_pool(self, n: int) -> None:
        """Signed batches, half of them valid, to mutate from."""
        for i in range(n):
            self.pool.append(self.batch(nonsense=0.0 if i % 2 == 0 else 0.4))


# -- the oracle -----------------------------------------------------------------------------------

# The gate's last-resort reason ("undecodable message: TypeError: ..."): the codec's own errors say
# what is wrong in words, never with a Python exception's name first.
_LAST_RESORT = re.compile(r"^undecodable message: [A-Z][A-Za-z0-9_]*(Error|Exception|Warning)\b")

_DETAIL = re.compile(r"(?<![A-Za-z])'[^']*'?|\"[^\"]*\"?|[-\d.]*\d[\d.e+-]*|\{.*\}")  # names and numbers in a reason: not part of its class

# The fold refuses these by the object's state (a bounded counter's rights), which the gate cannot know.
STATEFUL_REFUSALS = {"bcounter"}


def violations(gate: Gate, data: bytes, result: GateResult, now_ms: int, signer: Signer) -> list[str]:
    """What the gate got wrong about `data` (empty: nothing)."""
    bad: list[str] = []
    for rej in result.rejected:
        if not rej.reasons or not all(isinstance(r, str) and r.strip() for r in rej.reasons):
            bad.append(f"rejection without a reason: {rej}")
        for r in rej.reasons:
            if _LAST_RESORT.match(r):  # the gate's catch-all: an exception the codec did not expect
                bad.append(f"an exception escaped the decoder: {r[:200]}")
    cols = result.batch
    if cols is None:
        if result.accepted or len(result.rejected) != 1 or result.rejected[0].index is not None:
            bad.append("an undecodable message must be rejected once, as a whole")
        return bad
    n = len(cols)
    judged = [r.index for r in result.rejected if r.index is not None] + result.accepted
    whole = [r for r in result.rejected if r.index is None]
    if n == 0:
        if not whole or result.accepted:
            bad.append("an empty batch must be rejected as a whole")
        return bad
    if whole or sorted(judged) != list(range(n)):
        bad.append(f"operations of a batch of {n} judged {sorted(judged)} (and {len(whole)} whole-message)")
    if len(result.confidences) != len(result.accepted) or not all(0 <= c <= 1 for c in result.confidences):
        bad.append(f"confidences {result.confidences} for accepted {result.accepted}")
    if not result.accepted:
        return bad
    # Accepted: the message is signed by the trusted key, and each accepted operation obeys the rules.
    if cols.key_id != signer.key_id or cols.node_id != signer.node_id:
        bad.append(f"accepted a batch signed by {cols.node_id!r}/{cols.key_id!r}")
    try:
        verify_batch(cols.op_digests, cols.signature, signer.public)
    except SignatureError as e:
        bad.append(f"accepted a batch whose signature does not verify: {e}")
    pipes = gate.pipelines
    for i in result.accepted:
        op = cols.op(i)
        where = f"accepted op {i} ({op.object_id[:40]!r} {op.crdt_type} {op.kind} {cols.args_json[i][:60]})"
        if hashlib.sha256(op_content(op)).digest() != cols.op_digests[32 * i : 32 * i + 32]:
            bad.append(f"{where}: its content does not hash to its signed digest")
        if op.node_id != cols.node_id:
            bad.append(f"{where}: node {op.node_id!r} is not the signer")
        rule = pipes.rule_for(op.object_id)
        if (
            rule is None
            or rule.crdt_type != op.crdt_type
            or (op.crdt_type, op.kind) not in crdt_registry.VALID_PAIRS
        ):
            bad.append(f"{where}: not an operation of the pipeline")
            continue
        if not OBJECT_ID.match(op.object_id) or "\n" in op.object_id or object_id_too_long(op.object_id):
            bad.append(f"{where}: bad object id")
        if check_window(op.hlc, now_ms, max_age_s=rule.replay_window_s, max_future_s=rule.max_future_s):
            bad.append(f"{where}: outside the replay window")
        if canonical_args(op.args) != cols.args_json[i]:
            bad.append(f"{where}: args are not canonical")
        missing = [r for r in check_args(op.crdt_type, op.kind, op.args) if " takes no argument " not in r]
        if missing:
            bad.append(f"{where}: {missing}")
        for name in rule.encrypt:
            if name in op.args and name not in op.encrypted_fields:
                bad.append(f"{where}: {name} not encrypted")
    # What the fold reads of the verifier's output, folded into fresh objects.
    try:
        verified = encode_verified(REGION, 0, 0, result.accepted, result.confidences, result.message)
        runs = decode_verified_runs(verified)
    except Exception as e:  # noqa: BLE001 - the oracle reports it
        bad.append(f"the fold cannot read the accepted message: {type(e).__name__}: {e}")
        return bad
    make = _factory(pipes)
    for run in runs:
        stateless = [row for row in run.rows if row[2] not in STATEFUL_REFUSALS]
        run.rows = stateless
        try:
            folded = fold_run(run, make)
        except Exception as e:  # noqa: BLE001
            bad.append(f"the fold raised on accepted operations: {type(e).__name__}: {e}")
            continue
        for index, why in folded.failed:
            bad.append(f"accepted op {index} {cols.args_json[index][:80]}: {why}")
    return bad


_FACTORIES: dict[int, Callable[..., Any]] = {}


def _factory(pipes: Pipelines) -> Callable[..., Any]:
    f = _FACTORIES.get(id(pipes))
    if f is None:
        f = _FACTORIES[id(pipes)] = object_factory(pipes)
    return f


def verdict_class(result: GateResult) -> str:
    """A low-cardinality name for what the gate decided, for counting: the first reason of the
    first rejection, names and numbers elided, the decoder's own reason kept for undecodable ones."""
    if result.accepted and not result.rejected:
        return "accepted"
    first = result.rejected[0].reasons[0] if result.rejected and result.rejected[0].reasons else "?"
    first = _DETAIL.sub("…", first.replace("\n", " "))
    parts = first.split(": ")
    first = ": ".join(parts[:3] if parts[0] == "undecodable message" else parts[:1])
    return f"{'partly accepted' if result.accepted else 'rejected'}: {first.split('(')[0].strip()[:72]}"
