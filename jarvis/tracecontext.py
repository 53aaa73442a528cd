"""W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/) in Kafka record headers.

Every ingress record carries one: the SDK starts a trace per batch record, the ingest gateway
continues the caller's (its HTTP `traceparent`) or starts one; the verifier writes a child of it on
the jarvis.ops (or jarvis.ops.rejected) record it derives, and MirrorMaker 2 copies headers to the
other regions, so a fold anywhere sees which trace an operation belongs to. Pure: ids come from
`os.urandom`, nothing is exported here (connectors/otel.py does, when asked).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

HEADER = "traceparent"
# version-traceid-parentid-flags; a later version may append fields after a dash (the spec's rule).
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
SAMPLED = "01"

Headers = Iterable[tuple[str, bytes | str | None]] | dict[str, bytes | str | None] | None


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero: the span that wrote the record
    flags: str = SAMPLED

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def kafka_header(self) -> tuple[str, bytes]:
        """The (name, value) pair a Kafka record carries it as."""
        return HEADER, self.header().encode()

    def child(self, random: Callable[[int], bytes] = os.urandom) -> TraceParent:
        """The context a record derived from this one carries: same trace, a span of its own."""
        return TraceParent(self.trace_id, _nonzero_hex(8, random), self.flags)


def new_root(random: Callable[[int], bytes] = os.urandom) -> TraceParent:
    return TraceParent(_nonzero_hex(16, random), _nonzero_hex(8, random))


def parse(value: bytes | str | None) -> TraceParent | None:
    """The traceparent in `value`, or None when absent or malformed (a malformed one is ignored and
    a new trace started, as the spec asks of a receiver)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    m = _FORMAT.fullmatch(value.strip())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, flags)


def from_headers(headers: Headers) -> TraceParent | None:
    """The traceparent among a Kafka record's headers (confluent-kafka's list of pairs, aiokafka's
    tuple of pairs, or a dict); the first one counts."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    for k, v in pairs:
        if k == HEADER:
            return parse(v)
    return None


def continued(parent: TraceParent | None, random: Callable[[int], bytes] = os.urandom) -> TraceParent:
    """A child of `parent`, or the root of a new trace when there is none."""
    return parent.child(random) if parent is not None else new_root(random)


def _nonzero_hex(n: int, random: Callable[[int], bytes]) -> str:
    while True:
        b = random(n)
        if any(b):
            return b.hex()
