"""What the gateway accepts, checked before anything is written. Pure (no I/O).

`check_op` turns one decoded JSON value into an Operation of the pipeline or the reasons it is
refused: the registry's vocabulary (jarvis/json_ops.py), the caller's write grant, and the
verifier's own pure rule checks (payload size, number ranges, the type's argument rules), so that
what the verifier would reject anyway is answered now, with the same reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from jarvis.codec.records import canonical_args_utf8
from jarvis.gate import RuleVerifier
from jarvis.json_ops import JsonOp, OpInputError, OpParser, parse_op
from jarvis.ops import Operation
from jarvis.security.apikeys import Principal, write_denial
from pipelines.loader import Pipelines

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
