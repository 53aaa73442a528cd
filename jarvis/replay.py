"""Replay for audit: rebuild an object's state at time T from its operations, re-verifying each.

Pure: the sources (Kafka, the archive) live in connectors/replay_sources.py and hand over
`SourcedOp`s; this module folds them and writes the report.

Folding order. The fold worker folds each origin's operations in dot order; a replay may see them in
any order (the archive sorts by time, a snapshot already holds a prefix of every origin). CRDT
mutations commute, so the replay folds in HLC order (which makes the timeline read naturally) and
deduplicates by dot itself: a dot at or below the starting snapshot's context is already in the
state, a dot seen twice (a MirrorMaker duplicate that the archive kept twice under two topics) is
folded once. Afterwards the context is the highest dot per origin, exactly as the live fold has it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from jarvis.crdt import registry
from jarvis.materialize import FoldError, ObjectState, mutate
from jarvis.ops import Dot, Operation

TIMELINE_POINTS = 500  # at most this many (time, value) samples in a report


@dataclass(slots=True)
class SourcedOp:
    """An operation as a source found it, with what is needed to re-verify its signature."""

    op: Operation
    dot: Dot
    batch_id: str
    key_id: str
    index: int  # position in the signed batch
    op_digests: bytes
    signature: bytes


@dataclass(slots=True)
class HistoryEntry:
    op: Operation
    dot: Dot
    key_id: str
    problem: str | None  # why the signature or the fold failed; None when all is well

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": hlc_iso(self.op.hlc),
            "hlc": self.op.hlc,
            "op_id": self.op.op_id,
            "node_id": self.op.node_id,
            "region": self.op.region,
            "key_id": self.key_id,
            "kind": self.op.kind,
            "args": self.op.args,
            "dot": [self.dot.origin_region, self.dot.partition, self.dot.offset, self.dot.index],
            "problem": self.problem,
        }


@dataclass(slots=True)
class ReplayReport:
    object_id: str
    source: str
    at_hlc: int | None
    state: ObjectState | None
    ops_folded: int = 0
    ops_total: int = 0
    snapshot: dict[str, Any] | None = None  # the snapshot the replay started from, if any
    history: list[HistoryEntry] = field(default_factory=list)
    failures: list[HistoryEntry] = field(default_factory=list)
    timeline: list[tuple[int, float]] = field(default_factory=list)  # (hlc, plotted value)
    live: dict[str, Any] | None = None  # the live view, when compared

    @property
    def value(self) -> Any:
        return None if self.state is None else registry.SPECS[self.state.crdt_type].view(self.state.value)

    def differences(self) -> list[str]:
        """How the replayed state differs from the live one (empty: they agree)."""
        if self.live is None:
            return []
        if self.state is None:
            return [f"live has {self.object_id} but the replay found no operations"]
        out = []
        if self.live.get("value") != _jsonable(self.value):
            out.append(f"value: replayed {_short(self.value)} != live {_short(self.live.get('value'))}")
        if self.live.get("ops") is not None and self.live["ops"] != self.state.ops:
            out.append(f"operations folded: replayed {self.state.ops} != live {self.live['ops']}")
        return out

    def as_dict(self, history_limit: int = 1000) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "source": self.source,
            "at": hlc_iso(self.at_hlc) if self.at_hlc else None,
            "type": self.state.crdt_type if self.state else None,
            "value": _jsonable(self.value),
            "ops_folded": self.ops_folded,
            "ops_in_state": self.state.ops if self.state else 0,
            "snapshot": self.snapshot,
            "signature_failures": [e.as_dict() for e in self.failures],
            "differences_from_live": self.differences() if self.live is not None else None,
            "history": [e.as_dict() for e in self.history[-history_limit:]],
            "history_truncated": max(0, len(self.history) - history_limit),
            "timeline": [[hlc_iso(h), v] for h, v in self.timeline],
        }


def hlc_iso(hlc: int | None) -> str | None:
    if hlc is None:
        return None
    return dt.datetime.fromtimestamp((hlc >> 16) / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


def hlc_at(when: dt.datetime) -> int:
    """The largest HLC timestamp at or before `when` (inclusive of every logical tick in that ms)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (int(when.timestamp() * 1000) << 16) | 0xFFFF


def replay(
    object_id: str,
    ops: Iterable[SourcedOp],
    *,
    source: str,
    at_hlc: int | None,
    create: Callable[[str, str], ObjectState],
    verify: Callable[[SourcedOp], str | None],
    start: ObjectState | None = None,
    snapshot: dict[str, Any] | None = None,
    keep_history: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Fold `ops` of `object_id` with HLC <= `at_hlc` onto `start` (or an empty object).

    `verify` returns None for an operation whose signature holds, else the reason; failing
    operations are reported and not folded: an audit trusts only what it can verify.
    """
    report = ReplayReport(object_id, source, at_hlc, start, snapshot=snapshot)
    chosen: dict[Dot, SourcedOp] = {}
    for so in ops:
        report.ops_total += 1
        if so.op.object_id != object_id or (at_hlc is not None and so.op.hlc > at_hlc):
            continue
        if start is not None and start.seen(so.dot):
            continue
        chosen.setdefault(so.dot, so)
        if on_progress and report.ops_total % 10_000 == 0:
            on_progress(report.ops_total)
    ordered = sorted(chosen.values(), key=lambda so: (so.op.hlc, so.dot))
    state = start
    step = max(1, len(ordered) // TIMELINE_POINTS)
    for i, so in enumerate(ordered):
        problem = verify(so)
        entry = HistoryEntry(so.op, so.dot, so.key_id, problem)
        if problem is None:
            if state is None:
                state = create(object_id, so.op.crdt_type)
            try:
                mutate(state, so.op, so.dot)
            except (FoldError, ValueError, KeyError, TypeError) as e:
                entry.problem = f"cannot fold: {e}"
        if entry.problem is not None:
            report.failures.append(entry)
        else:
            report.ops_folded += 1
        if keep_history:
            report.history.append(entry)
        if state is not None and (i % step == 0 or i == len(ordered) - 1):
            report.timeline.append((so.op.hlc, plot_value(state)))
    report.state = state
    return report


def plot_value(state: ObjectState) -> float:
    """One number per state for the timeline plot."""
    spec = registry.get(state.crdt_type)
    return 0.0 if spec is None else spec.plot(spec.view(state.value))


def _jsonable(v: Any) -> Any:
    return orjson.loads(orjson.dumps(v)) if v is not None else None


def _short(v: Any, n: int = 120) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."
