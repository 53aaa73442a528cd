"""Where one operation went and when: the steps of `jarvis trace`. Pure (no I/O).

Every time is a Kafka record's timestamp (or the archive's), read back after the fact, so a trace
costs the pipeline nothing and works for operations written before anyone asked: the ingress record
(sent), the verifier's record on jarvis.ops or jarvis.ops.rejected (decided), the first record of the
fold's state changelog in each region whose causal context covers the operation's dot (folded; in
another region that includes the MirrorMaker hop), and the archive's row (archived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jarvis.ops import Dot

LOOKBACK_MS = 3_600_000  # an operation whose id does not say when it was written: the last hour


def start_ms(written_ms: int | None, now_ms: int) -> int:
    """Where a trace starts reading when not told (a gateway's op id says when it was written)."""
    return written_ms if written_ms is not None else now_ms - LOOKBACK_MS


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # written | verified | rejected | folded | archived
    region: str
    at_ms: int
    detail: str = ""


@dataclass(slots=True)
class Trace:
    op_id: str
    object_id: str
    origin_region: str
    steps: list[Step] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # steps looked for and not (yet) found
    reasons: list[str] = field(default_factory=list)  # a rejection's
    trace_id: str | None = None  # the W3C trace its ingress record carries (jarvis/tracecontext.py)

    def add(self, step: Step | None, looked_for: str) -> None:
        if step is None:
            self.missing.append(looked_for)
        else:
            self.steps.append(step)

    def ordered(self) -> list[Step]:
        """By time; the written step first (a clock skew between hosts must not reorder the story)."""
        return sorted(self.steps, key=lambda s: (s.name != "written", s.at_ms))

    @property
    def total_ms(self) -> int:
        steps = self.ordered()
        return steps[-1].at_ms - steps[0].at_ms if steps else 0

    def to_dict(self) -> dict[str, Any]:
        steps, prev = [], None
        for s in self.ordered():
            steps.append({
                "step": s.name, "region": s.region, "at_ms": s.at_ms,
                "since_previous_ms": 0 if prev is None else s.at_ms - prev, "detail": s.detail,
            })  # fmt: skip
            prev = s.at_ms
        out: dict[str, Any] = {
            "op_id": self.op_id, "object_id": self.object_id, "origin_region": self.origin_region,
            "steps": steps, "total_ms": self.total_ms, "missing": self.missing, "trace_id": self.trace_id,
        }  # fmt: skip
        if self.reasons:
            out["reasons"] = self.reasons
        return out


def context_covers(context: dict[str, list[int]] | None, dot: Dot) -> bool:
    """A folded state's causal context ("region/partition" -> [offset, index]) includes `dot`."""
    last = (context or {}).get(f"{dot.origin_region}/{dot.partition}")
    return last is not None and (dot.offset, dot.index) <= (last[0], last[1])
