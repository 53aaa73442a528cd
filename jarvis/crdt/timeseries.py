"""TimeSeries: a grow-only set of points with convergent, bounded eviction.

A point's identity is (timestamp, node, seq), so equal timestamps from different nodes never
collide. With max_points, a replica keeps the max_points greatest identities and raises an eviction
watermark to the smallest one kept; anything below the watermark is dropped now and whenever it is
re-delivered. The kept set is a pure function of (all points ever seen, the greatest watermark), so
replicas that evict in different orders still agree (top-k of a union is associative).

Points are held sorted by identity in typed-array columns (jarvis.crdt.pointlog): ~30 bytes a point
instead of a dict slot and three tuples, appends in identity order are O(1), and eviction drops a
prefix, also O(1) amortised, where a dict had to be re-sorted on every append past max_points.
"""

from __future__ import annotations

import math
from typing import Any

from jarvis.crdt.pointlog import PointLog, Row
from jarvis.errors import JarvisError

PointKey = tuple[float, str, int]
AGGREGATES = ("count", "sum", "min", "max", "mean", "p50", "p90", "p95", "p99")
# The most windows an aggregation may span (between its first and last point in range): bounds the
# work and the answer, and keeps every bucket index an exact float.
MAX_BUCKETS = 100_000
_EXACT = 2.0**53  # floats count integers exactly up to here: bucket starts stay distinct


class RangeQueryError(JarvisError, ValueError):
    """A range or aggregation the arguments make unanswerable; the message says why (HTTP 400)."""


def check_bounds(frm: float, to: float) -> None:
    """`from` and `to` of a range: numbers (infinite means unbounded), from not after to."""
    if math.isnan(frm) or math.isnan(to):
        raise RangeQueryError("from and to must be numbers, not NaN")
    if frm > to:
        raise RangeQueryError(f"from ({frm:g}) is after to ({to:g})")


def check_window(window: float, first: float | None = None, last: float | None = None) -> None:
    """A window of finite, positive seconds that cuts the points' span [first, last] (the first and
    last timestamps in range, None when there are none) into at most MAX_BUCKETS windows."""
    if not math.isfinite(window) or window <= 0:
        raise RangeQueryError(f"window must be a finite number of seconds above 0, got {window!r}")
    if first is None or last is None:
        return
    lo, hi = first / window, last / window
    if max(abs(lo), abs(hi)) >= _EXACT:  # also catches an overflow to infinity
        raise RangeQueryError(
            f"window {window:g} s is too small for timestamps like {max(abs(first), abs(last)):g}: "
            f"timestamp / window must stay below 2^53"
        )
    n = math.floor(hi) - math.floor(lo) + 1
    if n > MAX_BUCKETS:
        raise RangeQueryError(
            f"window {window:g} s cuts the points from {first:g} to {last:g} into {n} windows; "
            f"at most {MAX_BUCKETS} (widen the window or narrow from/to)"
        )


class TimeSeries:
    __slots__ = ("node_id", "max_points", "_log", "_one", "seqs", "watermark")

    def __init__(self, node_id: str = "", max_points: int | None = None) -> None:
        self.node_id = node_id
        self.max_points = max_points
        # The points, in columns (pointlog.py); None until needed. A delta holds its single point as
        # a tuple in _one instead: four one-element arrays per append would cost more than the append.
        self._log: PointLog | None = None
        self._one: Row | None = None
        self.seqs: dict[str, int] = {}
        self.watermark: PointKey | None = None

    def _points(self) -> PointLog:
        log = self._log
        if log is None:
            log = self._log = PointLog("d", "d")
            if self._one is not None:
                log.add(*self._one)
                self._one = None
        return log

    def append_data_point(
        self,
        timestamp: float,
        value: float,
        metadata: dict[str, Any] | None = None,
        node: str | None = None,
        seq: int | None = None,
    ) -> TimeSeries:
        """Append a point. `seq` (with `node`) names the point when the caller has a stable identity
        for it (the fold passes the operation's dot), so the order of appends does not matter."""
        node = node or self.node_id
        seqs = self.seqs
        last = seqs.get(node, 0)
        if seq is None:
            seq = last + 1
        if seq > last:
            seqs[node] = seq
        t = float(timestamp)
        v = float(value)
        d = TimeSeries.__new__(TimeSeries)
        d.node_id, d.max_points, d.watermark, d._log = self.node_id, self.max_points, None, None
        d._one = (t, node, seq, v, metadata)
        d.seqs = {node: seq}
        wm = self.watermark
        if wm is None or (t, node, seq) >= wm:
            log = self._log
            if log is None:
                log = self._points()
            log.add(t, node, seq, v, metadata)
            if self.max_points is not None and len(log) > self.max_points:
                self._evict()
        return d

    def _evict(self) -> None:
        log = self._points()
        wm = self.watermark
        if wm is not None:
            below = log.find(*wm) - log.lo
            if below:
                log.drop(below)
        mp = self.max_points
        if mp is not None and 0 < mp < len(log):
            log.drop(len(log) - mp)
            self.watermark = log.name(log.lo)

    def merge(self, other: TimeSeries) -> None:
        if other is self:
            return
        for node, s in other.seqs.items():
            if s > self.seqs.get(node, 0):
                self.seqs[node] = s
        if other.watermark is not None and (self.watermark is None or other.watermark > self.watermark):
            self.watermark = other.watermark
        if self.max_points is None and other.max_points is not None:
            self.max_points = other.max_points
        log = self._points()
        wm = self.watermark
        # Points below the watermark would be evicted at once: they are not added at all.
        if other._log is None:
            one = other._one
            if one is not None and (wm is None or one[:3] >= wm):
                log.add(*one)
        else:
            log.update([r for r in other._log.rows() if wm is None or r[:3] >= wm])
        self._evict()

    def range(self, frm: float = -math.inf, to: float = math.inf) -> list[dict[str, Any]]:
        check_bounds(frm, to)
        return [
            {"timestamp": t, "value": v, "node": node, "metadata": meta}
            for t, node, _, v, meta in self._points().rows()
            if frm <= t <= to
        ]

    def aggregate(self, frm: float, to: float, window: float, agg: str) -> list[dict[str, Any]]:
        """Windowed aggregation: one bucket per `window` seconds, aligned to multiples of it."""
        if agg not in AGGREGATES:
            raise ValueError(f"unknown aggregate {agg!r}; one of {', '.join(AGGREGATES)}")
        check_bounds(frm, to)
        check_window(window)
        points = [(t, v) for t, _, _, v, _ in self._points().rows() if frm <= t <= to]  # sorted by t
        if points:
            check_window(window, points[0][0], points[-1][0])
        buckets: dict[float, list[float]] = {}
        for t, v in points:
            buckets.setdefault(math.floor(t / window) * window, []).append(v)
        return [
            {"start": start, "value": _agg(vals, agg), "count": len(vals)}
            for start, vals in sorted(buckets.items())
        ]

    def value(self) -> list[dict[str, Any]]:
        return [{"timestamp": t, "value": v, "node": node} for t, node, _, v, _ in self._points().rows()]

    def __len__(self) -> int:
        if self._log is None:
            return 0 if self._one is None else 1
        return len(self._log)

    def copy(self) -> TimeSeries:
        c = TimeSeries(self.node_id, self.max_points)
        c._log = self._points().copy()
        c.seqs = dict(self.seqs)
        c.watermark = self.watermark
        return c

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_points": self.max_points,
            "points": [list(r) for r in self._points().rows()],
            "seqs": dict(sorted(self.seqs.items())),
            "watermark": list(self.watermark) if self.watermark else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> TimeSeries:
        ts = cls(node_id, d.get("max_points"))
        ts._points().update([(p[0], p[1], p[2], p[3], p[4]) for p in d["points"]])
        ts.seqs = dict(d["seqs"])
        wm = d.get("watermark")
        ts.watermark = (wm[0], wm[1], wm[2]) if wm else None
        return ts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeSeries):
            return NotImplemented
        mine, theirs = self._points(), other._points()
        return (
            mine.same_points(theirs)
            and mine.values() == theirs.values()
            and self.watermark == other.watermark
            and self.seqs == other.seqs
        )

    def __repr__(self) -> str:
        return f"TimeSeries({len(self)} points)"


def _agg(vals: list[float], agg: str) -> float:
    if agg == "count":
        return float(len(vals))
    if agg == "sum":
        return math.fsum(vals)
    if agg == "min":
        return min(vals)
    if agg == "max":
        return max(vals)
    if agg == "mean":
        return math.fsum(vals) / len(vals)
    q = int(agg[1:]) / 100
    s = sorted(vals)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
