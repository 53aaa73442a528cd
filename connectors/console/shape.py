"""Pure reshaping of what the query API and the topics hold into what the console's pages draw.

No I/O here: the server fetches, these functions decide (so unit tests cover them without a stack).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jarvis.crdt.resolvers import CATEGORY_PRIORITY, category_resolver, latest

COUNTER_STEP = {"increment": 1, "decrement": -1}


def counter_contributions(history: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Each origin region's net contribution to a counter, from its archived operations."""
    out: dict[str, int] = {}
    for h in history:
        sign = COUNTER_STEP.get(h.get("kind", ""))
        if sign is None or h.get("problem"):
            continue
        region = h.get("region") or "?"
        out[region] = out.get(region, 0) + sign * int(h.get("args", {}).get("n", 1))
    return dict(sorted(out.items()))


def register_detail(history: Iterable[Mapping[str, Any]], resolver: str | None) -> dict[str, Any] | None:
    """Which write the register holds, who wrote it, its HLC, and why it beat the others."""
    writes = []
    for h in history:
        if h.get("kind") != "write" or h.get("problem"):
            continue
        a = h.get("args", {})
        v = {"category": a["category"], "value": a.get("value")} if "category" in a else a.get("value")
        writes.append(((v, int(h["hlc"]), str(h["node_id"])), h))
    if not writes:
        return None
    key = category_resolver if resolver == "category" else latest
    (value, hlc, node), entry = max(writes, key=lambda w: key(w[0]))
    if resolver == "category":
        cat = value.get("category") if isinstance(value, dict) else None
        beaten = [w for w, _ in writes if key(w)[0] < key((value, hlc, node))[0]]
        why = (
            f"category {cat!r} outranks {len(beaten)} later or lower-ranked write(s) "
            f"(order: {' > '.join(CATEGORY_PRIORITY)} > anything else), then the latest timestamp"
            if beaten
            else "no write of a higher category; the latest timestamp (then node id) wins"
        )
    else:
        why = "the latest HLC timestamp wins; equal timestamps go to the larger node id"
    return {
        "value": value,
        "writer": node,
        "region": entry.get("region"),
        "hlc": str(hlc),  # beyond 2**53: a JavaScript number would round it
        "time": entry.get("time"),
        "writes": len(writes),
        "why": why,
    }


@dataclass(frozen=True, slots=True)
class TimelineStep:
    index: int
    from_state: str
    to_state: str
    timestamp: int
    node: str
    applied: bool
    contest: int  # transitions sharing one contest left the same state; at most one of them applied
    rivals: int  # how many transitions in its contest (1: it was alone)


def workflow_timeline(history: Iterable[Mapping[str, Any]]) -> list[TimelineStep]:
    """The workflow's transitions in the fold's (timestamp) order, grouped into contests.

    A transition the fold did not apply was attempted from a state already left: it lost to the
    applied transition just before it, its concurrent rival. So each applied transition opens a
    contest that the unapplied ones after it join; it is the one that won."""
    rows = list(history)
    groups: list[list[int]] = []
    for i, h in enumerate(rows):
        if h["applied"] or not groups:
            groups.append([i])
        else:
            groups[-1].append(i)
    steps: list[TimelineStep] = []
    for contest, members in enumerate(groups):
        for i in members:
            h = rows[i]
            steps.append(
                TimelineStep(i, h["from"], h["to"], int(h["timestamp"]), str(h["node"]), bool(h["applied"]),
                             contest, len(members))  # fmt: skip
            )
    return steps


def hlc_time(hlc: int) -> str:
    return dt.datetime.fromtimestamp((hlc >> 16) / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


# -- rejected operations ------------------------------------------------------------------------

REJECTED_COLUMNS = (
    "rejected_at", "region", "reasons", "object_id", "op_id", "node_id", "kind", "topic", "partition",
    "offset", "index", "decoded",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RejectedFilter:
    reason: str = ""  # substring of any reason
    node: str = ""  # exact producing node
    prefix: str = ""  # object id prefix
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, row: Mapping[str, Any]) -> bool:
        if self.reason and not any(self.reason.lower() in r.lower() for r in row["reasons"]):
            return False
        if self.node and row.get("node_id") != self.node:
            return False
        if self.prefix and not (row.get("object_id") or "").startswith(self.prefix):
            return False
        at = row["rejected_at_ms"]
        if self.since_ms is not None and at < self.since_ms:
            return False
        return not (self.until_ms is not None and at > self.until_ms)


def rejected_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(REJECTED_COLUMNS)
    for r in rows:
        w.writerow(
            [r["rejected_at"], r["region"], " | ".join(r["reasons"]), r.get("object_id") or "",
             r.get("op_id") or "", r.get("node_id") or "", r.get("kind") or "", r["topic"], r["partition"],
             r["offset"], "" if r.get("index") is None else r["index"], _cell(r.get("decoded"))]
        )  # fmt: skip
    return buf.getvalue()


def _cell(v: Any) -> str:
    return "" if v is None else json.dumps(v, sort_keys=True, default=str)


# -- tasks --------------------------------------------------------------------------------------


def tasks_by_state(views: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Task workflow views grouped by state, each with its attempts (claims) and last error."""
    out: dict[str, list[dict[str, Any]]] = {}
    for v in views:
        value = v.get("value") or {}
        hist = [h for h in value.get("history", []) if h.get("applied")]
        errors = [h["args"].get("error") for h in hist if h.get("args", {}).get("error")]
        submitted = next((h["args"] for h in hist if h["to"] == "submitted"), {})
        out.setdefault(value.get("state", "?"), []).append(
            {
                "task_id": v["object_id"].removeprefix("task:"),
                "state": value.get("state"),
                "pool": ",".join(submitted.get("capabilities") or []) or submitted.get("handler"),
                "attempts": sum(1 for h in hist if h["to"] == "claimed"),
                "retries": sum(1 for h in hist if h["to"] == "retried"),
                "last_error": errors[-1] if errors else None,
            }
        )
    return dict(sorted(out.items()))
