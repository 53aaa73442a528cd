"""Reference models for the differential tests: the plain representations the compact ones replaced.

One dict entry per element or point, tuples for dots and names: slow and large, but obviously the
semantics. test_compact.py checks that the compact types produce the same plain data, values and
equalities as these on random multi-replica traces. Kept verbatim in behaviour; only renamed.
"""

from __future__ import annotations

import math
import time
from typing import Any

from jarvis.crdt.elements import element_key, element_value
from jarvis.crdt.timeseries import AGGREGATES, _agg
from jarvis.crdt.workflow import GUARDS

Dot = tuple[str, int]
PointKey = tuple[float, str, int]
TKey = tuple[int, str, int]


class RefORSet:
    __slots__ = ("node_id", "entries", "vv", "cloud", "stamps", "marks")

    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        # Tuples, not sets: an element almost always has one dot, and a 1-tuple is a fifth of a set.
        self.entries: dict[str, tuple[Dot, ...]] = {}
        self.vv: dict[str, int] = {}
        self.cloud: set[Dot] = set()
        self.stamps: dict[str, tuple[int, str]] = {}
        self.marks: dict[str, int] = {}

    # -- mutators ---------------------------------------------------------------------------------
    def add(self, x: Any, timestamp: int | None = None, node: str | None = None) -> RefORSet:
        k = element_key(x)
        d = RefORSet.__new__(RefORSet)
        d.node_id, d.entries, d.vv, d.cloud, d.stamps, d.marks = self.node_id, {}, {}, set(), {}, {}
        if timestamp is not None:
            stamp = (timestamp, node or self.node_id)
            if timestamp >= self.marks.get(k, -1):
                cur = self.stamps.get(k)
                if cur is None or stamp > cur:
                    self.stamps[k] = stamp
            d.stamps[k] = stamp
            return d
        node = node or self.node_id
        c = self.vv.get(node, 0) + 1
        while (node, c) in self.cloud:
            c += 1
        dot = (node, c)
        old = self.entries.get(k)
        self.entries[k] = (dot,)
        if c == self.vv.get(node, 0) + 1:
            self.vv[node] = c  # our own next dot: contiguous, no cloud needed
        else:
            self._see({dot})
        d.entries[k] = (dot,)
        d.cloud = {*old, dot} if old else {dot}
        return d

    def remove(self, x: Any, before: int | None = None) -> RefORSet:
        k = element_key(x)
        d = RefORSet(self.node_id)
        if before is not None:
            if before > self.marks.get(k, -1):
                self.marks[k] = before
                stamp = self.stamps.get(k)
                if stamp is not None and stamp[0] < before:
                    del self.stamps[k]
            d.marks[k] = before
        old = self.entries.pop(k, None)
        if old:
            d.cloud = set(old)
        return d

    # -- queries ----------------------------------------------------------------------------------
    def contains(self, x: Any) -> bool:
        k = element_key(x)
        return k in self.entries or k in self.stamps

    def keys(self) -> set[str]:
        return self.entries.keys() | self.stamps.keys()

    def elements(self) -> list[Any]:
        return [element_value(k) for k in sorted(self.keys())]

    def value(self) -> list[Any]:
        return self.elements()

    def __len__(self) -> int:
        return len(self.keys())

    # -- merge ------------------------------------------------------------------------------------
    def _seen(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def _see(self, dots: set[Dot]) -> None:
        vv = self.vv
        for node, c in dots:
            if c == vv.get(node, 0) + 1:
                vv[node] = c
            elif c > vv.get(node, 0):
                self.cloud.add((node, c))
        if self.cloud:
            self._compact()

    def _compact(self) -> None:
        vv = self.vv
        for node, c in sorted(self.cloud):
            if c <= vv.get(node, 0):
                self.cloud.discard((node, c))
            elif c == vv.get(node, 0) + 1:
                vv[node] = c
                self.cloud.discard((node, c))

    def merge(self, other: RefORSet) -> None:
        merged: dict[str, tuple[Dot, ...]] = {}
        for k in self.entries.keys() | other.entries.keys():
            mine = set(self.entries.get(k, ()))
            theirs = set(other.entries.get(k, ()))
            keep = (
                (mine & theirs)
                | {d for d in mine if not other._seen(d)}
                | {d for d in theirs if not self._seen(d)}
            )
            if keep:
                merged[k] = tuple(sorted(keep))
        self.entries = merged
        for node, c in other.vv.items():
            if c > self.vv.get(node, 0):
                self.vv[node] = c
        self.cloud |= other.cloud
        self._compact()
        for k, t in other.marks.items():
            if t > self.marks.get(k, -1):
                self.marks[k] = t
        for k, s in other.stamps.items():
            cur = self.stamps.get(k)
            if cur is None or s > cur:
                self.stamps[k] = s
        for k in [k for k, s in self.stamps.items() if s[0] < self.marks.get(k, -1)]:
            del self.stamps[k]

    def copy(self) -> RefORSet:
        c = RefORSet(self.node_id)
        c.entries = dict(self.entries)
        c.vv = dict(self.vv)
        c.cloud = set(self.cloud)
        c.stamps = dict(self.stamps)
        c.marks = dict(self.marks)
        return c

    def metadata_size(self) -> int:
        """Entries of bookkeeping held: dots, context, stamps and watermarks."""
        return (
            sum(len(v) for v in self.entries.values())
            + len(self.vv)
            + len(self.cloud)
            + len(self.stamps)
            + len(self.marks)
        )

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": {k: sorted([list(d) for d in v]) for k, v in sorted(self.entries.items())},
            "vv": dict(sorted(self.vv.items())),
            "cloud": sorted([list(d) for d in self.cloud]),
            "stamps": {k: list(v) for k, v in sorted(self.stamps.items())},
            "marks": dict(sorted(self.marks.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> RefORSet:
        s = cls(node_id)
        s.entries = {k: tuple(sorted((n, c) for n, c in v)) for k, v in d["entries"].items()}
        s.vv = dict(d["vv"])
        s.cloud = {(n, c) for n, c in d["cloud"]}
        s.stamps = {k: (v[0], v[1]) for k, v in d.get("stamps", {}).items()}
        s.marks = dict(d.get("marks", {}))
        return s

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RefORSet):
            return NotImplemented
        return (
            self.entries == other.entries
            and {k: v for k, v in self.vv.items() if v} == {k: v for k, v in other.vv.items() if v}
            and self.cloud == other.cloud
            and self.stamps == other.stamps
            and self.marks == other.marks
        )

    def __repr__(self) -> str:
        return f"RefORSet({self.elements()})"


class RefTimeSeries:
    __slots__ = ("node_id", "max_points", "points", "seqs", "watermark")

    def __init__(self, node_id: str = "", max_points: int | None = None) -> None:
        self.node_id = node_id
        self.max_points = max_points
        self.points: dict[PointKey, tuple[float, dict[str, Any] | None]] = {}
        self.seqs: dict[str, int] = {}
        self.watermark: PointKey | None = None

    def append_data_point(
        self,
        timestamp: float,
        value: float,
        metadata: dict[str, Any] | None = None,
        node: str | None = None,
        seq: int | None = None,
    ) -> RefTimeSeries:
        """Append a point. `seq` (with `node`) names the point when the caller has a stable identity
        for it (the fold passes the operation's dot), so the order of appends does not matter."""
        node = node or self.node_id
        if seq is None:
            seq = self.seqs.get(node, 0) + 1
        if seq > self.seqs.get(node, 0):
            self.seqs[node] = seq
        key = (float(timestamp), node, seq)
        point = (float(value), metadata)
        d = RefTimeSeries.__new__(RefTimeSeries)
        d.node_id, d.max_points, d.watermark = self.node_id, self.max_points, None
        d.points = {key: point}
        d.seqs = {node: seq}
        if self.watermark is None or key >= self.watermark:
            self.points[key] = point
            if self.max_points is not None and len(self.points) > self.max_points:
                self._evict()
        return d

    def _evict(self) -> None:
        if self.watermark is not None:
            wm = self.watermark
            self.points = {k: v for k, v in self.points.items() if k >= wm}
        if self.max_points is not None and len(self.points) > self.max_points:
            keep = sorted(self.points)[-self.max_points :]
            self.watermark = keep[0]
            self.points = {k: self.points[k] for k in keep}

    def merge(self, other: RefTimeSeries) -> None:
        self.points.update(other.points)
        for node, s in other.seqs.items():
            if s > self.seqs.get(node, 0):
                self.seqs[node] = s
        if other.watermark is not None and (self.watermark is None or other.watermark > self.watermark):
            self.watermark = other.watermark
        if self.max_points is None and other.max_points is not None:
            self.max_points = other.max_points
        self._evict()

    def range(self, frm: float = -math.inf, to: float = math.inf) -> list[dict[str, Any]]:
        return [
            {"timestamp": k[0], "value": v[0], "node": k[1], "metadata": v[1]}
            for k, v in sorted(self.points.items())
            if frm <= k[0] <= to
        ]

    def aggregate(self, frm: float, to: float, window: float, agg: str) -> list[dict[str, Any]]:
        """Windowed aggregation: one bucket per `window` seconds, aligned to multiples of it."""
        if agg not in AGGREGATES:
            raise ValueError(f"unknown aggregate {agg!r}; one of {', '.join(AGGREGATES)}")
        if window <= 0:
            raise ValueError("window must be positive")
        buckets: dict[float, list[float]] = {}
        for k, v in sorted(self.points.items()):
            if frm <= k[0] <= to:
                buckets.setdefault(math.floor(k[0] / window) * window, []).append(v[0])
        return [
            {"start": start, "value": _agg(vals, agg), "count": len(vals)}
            for start, vals in sorted(buckets.items())
        ]

    def value(self) -> list[dict[str, Any]]:
        return [{"timestamp": k[0], "value": v[0], "node": k[1]} for k, v in sorted(self.points.items())]

    def __len__(self) -> int:
        return len(self.points)

    def copy(self) -> RefTimeSeries:
        c = RefTimeSeries(self.node_id, self.max_points)
        c.points = dict(self.points)
        c.seqs = dict(self.seqs)
        c.watermark = self.watermark
        return c

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_points": self.max_points,
            "points": [[k[0], k[1], k[2], v[0], v[1]] for k, v in sorted(self.points.items())],
            "seqs": dict(sorted(self.seqs.items())),
            "watermark": list(self.watermark) if self.watermark else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> RefTimeSeries:
        ts = cls(node_id, d.get("max_points"))
        ts.points = {(p[0], p[1], p[2]): (p[3], p[4]) for p in d["points"]}
        ts.seqs = dict(d["seqs"])
        wm = d.get("watermark")
        ts.watermark = (wm[0], wm[1], wm[2]) if wm else None
        return ts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RefTimeSeries):
            return NotImplemented
        return self.points == other.points and self.watermark == other.watermark and self.seqs == other.seqs

    def __repr__(self) -> str:
        return f"RefTimeSeries({len(self.points)} points)"


class RefWorkflow:
    __slots__ = ("node_id", "definition", "transitions", "seqs", "_cache")

    def __init__(self, node_id: str, definition: dict[str, Any]) -> None:
        if definition.get("initial") not in definition.get("states", []):
            raise ValueError("a workflow definition needs 'states' and an 'initial' state among them")
        self.node_id = node_id
        self.definition = definition
        self.transitions: dict[TKey, tuple[str, dict[str, Any] | None]] = {}
        self.seqs: dict[str, int] = {}
        # (transitions replayed, state, history, greatest key): lets an append in key order extend the
        # chain in O(1) instead of replaying the whole history.
        self._cache: tuple[int, str, list[tuple[TKey, str, bool]], TKey | None] | None = None

    def _allowed(self, frm: str, to: str, args: dict[str, Any] | None) -> bool:
        if to not in self.definition["transitions"].get(frm, ()):
            return False
        guard = (self.definition.get("guards") or {}).get(f"{frm}->{to}")
        return guard is None or GUARDS[guard](frm, to, args or {})

    def _replay(self) -> tuple[str, list[tuple[TKey, str, bool]]]:
        """(current state, [(transition key, state it left from, applied?)]) - compact; see history()."""
        if self._cache is not None and self._cache[0] == len(self.transitions):
            return self._cache[1], self._cache[2]
        state = self.definition["initial"]
        history = []
        for key in sorted(self.transitions):
            to, args = self.transitions[key]
            ok = self._allowed(state, to, args)
            history.append((key, state, ok))
            if ok:
                state = to
        self._cache = (
            len(self.transitions),
            state,
            history,
            max(self.transitions) if self.transitions else None,
        )
        return state, history

    def state(self) -> str:
        return self._replay()[0]

    def history(self) -> list[dict[str, Any]]:
        out = []
        for key, frm, ok in self._replay()[1]:
            to, args = self.transitions[key]
            out.append(
                {
                    "from": frm,
                    "to": to,
                    "timestamp": key[0],
                    "node": key[1],
                    "args": args or {},
                    "applied": ok,
                }
            )
        return out

    def _record(
        self, to_state: str, timestamp: int, node: str, args: dict[str, Any], seq: int | None = None
    ) -> RefWorkflow:
        if to_state not in self.definition["states"]:
            raise ValueError(f"unknown state {to_state!r}; states: {', '.join(self.definition['states'])}")
        if seq is None:
            seq = self.seqs.get(node, 0) + 1
        if seq > self.seqs.get(node, 0):
            self.seqs[node] = seq
        key = (timestamp, node, seq)
        cache = self._cache
        self.transitions[key] = (to_state, args)
        if (
            cache is not None
            and cache[0] == len(self.transitions) - 1
            and (cache[3] is None or key > cache[3])
        ):
            state, history = cache[1], cache[2]
            ok = self._allowed(state, to_state, args)
            history.append((key, state, ok))
            self._cache = (len(self.transitions), to_state if ok else state, history, key)
        d = RefWorkflow.__new__(RefWorkflow)
        d.node_id, d.definition, d._cache = self.node_id, self.definition, None
        d.transitions = {key: (to_state, args)}
        d.seqs = {node: seq}
        return d

    def transition(
        self, to_state: str, timestamp: int | None = None, node: str | None = None, **args: Any
    ) -> RefWorkflow:
        """Move to `to_state` if the definition allows it from the current state (else ValueError)."""
        cur = self.state()
        if not self._allowed(cur, to_state, args):
            allowed = ", ".join(self.definition["transitions"].get(cur, ())) or "none"
            raise ValueError(
                f"transition {cur} -> {to_state} is not allowed (from {cur}: {allowed}) or its guard fails"
            )
        ts = timestamp if timestamp is not None else time.time_ns() // 1_000_000 << 16
        return self._record(to_state, ts, node or self.node_id, args)

    def record_transition(
        self,
        to_state: str,
        timestamp: int,
        node: str,
        args: dict[str, Any] | None = None,
        seq: int | None = None,
    ) -> RefWorkflow:
        """Record a transition from the log without judging it now: replay decides whether it applies.
        `seq` names the transition when the caller has a stable identity for it (the fold's dot)."""
        return self._record(to_state, timestamp, node, dict(args or {}), seq)

    def entered_at(self) -> int | None:
        for key, _, ok in reversed(self._replay()[1]):
            if ok:
                return key[0]
        return None

    def deadline(self) -> float | None:
        """Epoch seconds by which the current state should be left, if the definition sets one."""
        limit = (self.definition.get("deadlines") or {}).get(self.state())
        if limit is None:
            return None
        entered = self.entered_at()
        start = (entered >> 16) / 1000 if entered is not None else None
        return None if start is None else start + float(limit)

    def is_overdue(self, now: float | None = None) -> bool:
        d = self.deadline()
        return d is not None and (now if now is not None else time.time()) > d

    def value(self) -> dict[str, Any]:
        return {"state": self.state(), "history": self.history(), "deadline": self.deadline()}

    def merge(self, other: RefWorkflow) -> None:
        self.transitions.update(other.transitions)
        for node, s in other.seqs.items():
            if s > self.seqs.get(node, 0):
                self.seqs[node] = s
        self._cache = None

    def copy(self) -> RefWorkflow:
        w = RefWorkflow(self.node_id, self.definition)
        w.transitions = dict(self.transitions)
        w.seqs = dict(self.seqs)
        return w

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": self.definition,
            "transitions": [[k[0], k[1], k[2], v[0], v[1]] for k, v in sorted(self.transitions.items())],
            "seqs": dict(sorted(self.seqs.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> RefWorkflow:
        w = cls(node_id, d["definition"])
        w.transitions = {(t[0], t[1], t[2]): (t[3], t[4]) for t in d["transitions"]}
        w.seqs = dict(d["seqs"])
        return w

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RefWorkflow):
            return NotImplemented
        return self.transitions == other.transitions and self.seqs == other.seqs

    def __repr__(self) -> str:
        return f"RefWorkflow({self.state()!r}, {len(self.transitions)} transitions)"
