"""TimeSeries: a grow-only set of points with convergent, bounded eviction.

A point's identity is (timestamp, node, seq), so equal timestamps from different nodes never
collide. With max_points, a replica keeps the max_points greatest identities and raises an eviction
watermark to the smallest one kept; anything below the watermark is dropped now and whenever it is
re-delivered. The kept set is a pure function of (all points ever seen, the greatest watermark), so
replicas that evict in different orders still agree (top-k of a union is associative).
"""

from __future__ import annotations

import math
from typing import Any

PointKey = tuple[float, str, int]
AGGREGATES = ("count", "sum", "min", "max", "mean", "p50", "p90", "p95", "p99")


class TimeSeries:
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
    ) -> TimeSeries:
        """Append a point. `seq` (with `node`) names the point when the caller has a stable identity
        for it (the fold passes the operation's dot), so the order of appends does not matter."""
        node = node or self.node_id
        if seq is None:
            seq = self.seqs.get(node, 0) + 1
        if seq > self.seqs.get(node, 0):
            self.seqs[node] = seq
        key = (float(timestamp), node, seq)
        point = (float(value), metadata)
        d = TimeSeries.__new__(TimeSeries)
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

    def merge(self, other: TimeSeries) -> None:
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

    def copy(self) -> TimeSeries:
        c = TimeSeries(self.node_id, self.max_points)
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
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> TimeSeries:
        ts = cls(node_id, d.get("max_points"))
        ts.points = {(p[0], p[1], p[2]): (p[3], p[4]) for p in d["points"]}
        ts.seqs = dict(d["seqs"])
        wm = d.get("watermark")
        ts.watermark = (wm[0], wm[1], wm[2]) if wm else None
        return ts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeSeries):
            return NotImplemented
        return self.points == other.points and self.watermark == other.watermark and self.seqs == other.seqs

    def __repr__(self) -> str:
        return f"TimeSeries({len(self.points)} points)"


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
