"""What the gateway accepts, checked before anything is written. Pure (no I/O).

`check_op` turns one decoded JSON value into an Operation of the pipeline or the reasons it is
refused: the registry's vocabulary (jarvis/json_ops.py), the caller's write grant, and the
verifier's own pure rule checks (payload size, number ranges, the type's argument rules), so that
what the verifier would reject anyway is answered now, with the same reasons.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.ingest.writer import Row
from jarvis.codec.batch_builder import Head
from jarvis.codec.records import canonical_args_utf8
from jarvis.crdt import registry as crdt_registry
from jarvis.gate import RuleVerifier
from jarvis.json_ops import TOP_LEVEL_KEYS, JsonOp, OpInputError, OpParser, parse_op, wire_kind
from jarvis.ops import Operation
from jarvis.security.apikeys import Principal, Role, write_denial
from pipelines.loader import Pipelines, PrefixRule

MAX_BODY_BYTES = 4 * 1024 * 1024  # a JSON body; NDJSON is read line by line
MAX_LINE_BYTES = 1024 * 1024  # one NDJSON line, and an MQTT payload (the broker's limit too)
MAX_OPS_PER_REQUEST = 10_000
MAX_IDEMPOTENCY_KEY = 255
# Visible ASCII with inner spaces: what an HTTP header carries unchanged (servers strip the ends).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"

_rules = RuleVerifier()


@dataclass(slots=True)
class Checked:
    op: JsonOp | None = None
    reasons: list[str] = field(default_factory=list)
    forbidden: bool = False  # refused by the caller's grants (403), not for its shape (400)


def parse_body(raw: bytes) -> list[Any]:
    """The operations of a JSON body: one object or an array of them. Raises OpInputError."""
    if not raw.strip():
        raise OpInputError(["empty body: send one operation, or a JSON array of them"])
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise OpInputError([f"not JSON: {e}"]) from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise OpInputError(["empty array: nothing to write"])
    if len(items) > MAX_OPS_PER_REQUEST:
        raise OpInputError([f"{len(items)} operations in one request; at most {MAX_OPS_PER_REQUEST}"])
    return items


def parse_line(line: bytes) -> Any:
    """One NDJSON line's value. Raises OpInputError."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise OpInputError([f"not JSON: {e}"]) from None


def check_op(
    item: Any,
    principal: Principal,
    pipes: Pipelines,
    build: Callable[[JsonOp], Operation],
    *,
    parser: OpParser | None = None,
    verdicts: dict[tuple[str, str, bytes], list[str]] | None = None,
) -> tuple[Checked, Operation | None]:
    """A gateway passes its `parser` (which remembers objects) and one `verdicts` dict per request,
    which remembers the rule check of each distinct content: the check depends on nothing else
    (RuleVerifier.content_only), as the verifier's gate relies on too."""
    try:
        jop = parser.parse(item) if parser is not None else parse_op(item, pipes.rule_for)
    except OpInputError as e:
        return Checked(reasons=e.reasons), None
    denial = write_denial(principal, jop.object_id)
    if denial:
        return Checked(jop, [denial], forbidden=True), None
    op = build(jop)
    rule = pipes.rule_for(jop.object_id)
    assert rule is not None  # parse_op found it
    if verdicts is None or rule.encrypt:
        reasons, _ = _rules.check(op, rule)
    else:
        content = (rule.prefix, op.kind, canonical_args_utf8(op.args))
        reasons = verdicts.get(content)  # type: ignore[assignment]
        if reasons is None:
            reasons = verdicts[content] = _rules.check(op, rule)[0]
    if reasons:
        return Checked(jop, reasons), None
    return Checked(jop), op


def check_idempotency_key(value: str) -> str | None:
    """Why an Idempotency-Key header is unacceptable (None if fine)."""
    if len(value) > MAX_IDEMPOTENCY_KEY or not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, value):
        return f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters (inner spaces allowed)"
    return None


# What each JSON type admits among the values orjson decodes (exact types: no subclasses, no NaN
# or Infinity in the input, so a float is finite unless it overflowed).
_PY_TYPES: dict[str | None, tuple[type, ...] | None] = {
    None: None, "string": (str,), "integer": (int,), "number": (int, float), "object": (dict,),
    "array": (list,), "boolean": (bool,),
}  # fmt: skip


class FastChecker:
    """A JSON request's operations straight to `Row`s, when every one of them is of the usual kind.

    A gateway sees the same objects and kinds again and again, mostly valid, in pipelines without
    encrypted fields. For them, what `check_op` and the writer do per operation (parse_op's checks,
    the grant, an Operation built and validated, its rule checked, its args made canonical twice,
    its head and partition looked up) comes down to a few lookups of what was found before, one
    canonical encoding and one Row. `rows` answers None at the first operation that is anything
    else (unknown yet and invalid, refused, encrypted, of another shape): the caller then takes the
    general path, which gives every reason. The Rows are what that path writes for the same
    request, field for field and byte for byte (tests/unit/test_ingest_fast.py)."""

    def __init__(self, pipes: Pipelines, parser: OpParser, encoder: Any, max_objects: int = 100_000) -> None:
        self.pipes = pipes
        self.parser = parser
        self.encoder = encoder  # connectors.ingest.writer.BatchEncoder: partitions and heads
        self.max_objects = max_objects
        # valid object id -> (its type, its rule, its partition, its heads by wire kind)
        self._objects: dict[str, tuple[str, PrefixRule, int, dict[str, Head]]] = {}
        # (type, kind as sent) -> (wire kind, the names its args may have, (name, types, required)...)
        self._kinds: dict[tuple[str, str], tuple[str, frozenset[str], tuple[tuple[str, Any, bool], ...]]] = {}
        # role -> object id -> may it write there. By the Role value: a changed role is another key.
        self._grants: dict[Role, dict[str, bool]] = {}

    def rows(
        self,
        items: list[Any],
        principal: Principal,
        row_of: Callable[[int, str, str, str, dict[str, Any], int, Head, bytes], Row],
    ) -> list[Row] | None:
        """`row_of(index, object_id, type, wire kind, args, partition, head, args_json)` makes each
        Row (its op id and HLC are the request's)."""
        objects, kinds = self._objects, self._kinds
        role = principal.role
        grants = self._grants.get(role)
        if grants is None or len(grants) >= self.max_objects:
            if len(self._grants) >= 64:
                self._grants.clear()
            grants = self._grants[role] = {}
        verdicts: dict[tuple[str, str, bytes], bool] = {}  # this request's rule checks, by content
        out: list[Row] = []
        for i, d in enumerate(items):
            if type(d) is not dict or not d.keys() <= TOP_LEVEL_KEYS:
                return None
            oid = d.get("object_id")
            known = objects.get(oid) if type(oid) is str else None
            if known is None:
                known = self._learn(d)
                if known is None:
                    return None
            crdt_type, rule, partition, heads = known
            args = d.get("args", {})
            kind = d.get("kind")
            if type(args) is not dict or type(kind) is not str or d.get("type") not in (None, crdt_type):
                return None
            spec = kinds.get((crdt_type, kind))
            if spec is None:
                spec = self._learn_kind(crdt_type, kind)
                if spec is None:
                    return None
            wk, names, declared = spec
            if not args.keys() <= names:
                return None
            for name, types, required in declared:
                if name in args:
                    v = args[name]
                    if types is not None and (type(v) not in types or (type(v) is float and not math.isfinite(v))):
                        return None
                elif required:
                    return None
            writable = grants.get(oid)
            if writable is None:
                writable = grants[oid] = role.may_write(oid)
            if not writable:
                return None
            args_json = canonical_args_utf8(args)
            content = (rule.prefix, wk, args_json)
            ok = verdicts.get(content)
            if ok is None:
                op = Operation("-", oid, crdt_type, wk, args, "-", "-", 0)
                ok = verdicts[content] = not _rules.check(op, rule)[0]
            if not ok:
                return None
            head = heads.get(wk)
            if head is None:
                head = heads[wk] = self.encoder.head(oid, crdt_type, wk)
            out.append(row_of(i, oid, crdt_type, wk, args, partition, head, args_json))
        return out

    def _learn(self, d: dict[str, Any]) -> tuple[str, PrefixRule, int, dict[str, Head]] | None:
        try:
            jop = self.parser.parse(d)
        except OpInputError:
            return None
        rule = self.pipes.rule_for(jop.object_id)
        if rule is None or rule.encrypt:
            return None
        if len(self._objects) >= self.max_objects:
            self._objects.clear()
        known = self._objects[jop.object_id] = (
            jop.crdt_type, rule, self.encoder.partition_of(jop.object_id), {}
        )  # fmt: skip
        return known

    def _learn_kind(self, crdt_type: str, kind: str) -> tuple[str, frozenset[str], tuple[tuple[str, Any, bool], ...]] | None:
        wk = wire_kind(crdt_type, kind)
        spec = crdt_registry.get(crdt_type)
        if wk is None or spec is None:
            return None
        declared = spec.args.get(wk)
        if declared is None:  # a kind without declared args takes any: the general path checks it
            return None
        if any(a.json_type not in _PY_TYPES for a in declared):
            return None
        entry = (wk, frozenset(a.name for a in declared), tuple((a.name, _PY_TYPES[a.json_type], a.required) for a in declared))
        self._kinds[(crdt_type, kind)] = entry
        return entry
