"""An independent, deliberately naive model of what the pipeline must materialize.

It shares no code with jarvis.crdt or jarvis.materialize: it recomputes every object's value from
the full list of operations sent (each with its HLC and node), the slow and obvious way, so a test
can compare the pipeline's answer with it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SentOp:
    object_id: str
    crdt_type: str
    kind: str
    args: dict[str, Any]
    hlc: int
    node_id: str


def model_value(ops: list[SentOp], workflow: dict[str, Any] | None = None) -> Any:
    t = ops[0].crdt_type
    if t in ("gcounter", "pncounter"):
        return sum(o.args.get("n", 1) * (1 if o.kind == "increment" else -1) for o in ops)
    if t == "gset":
        return sorted({_key(o.args["element"]) for o in ops})
    if t == "orset":
        return sorted(_add_wins(ops, "element"))
    if t == "lww":
        best = max(ops, key=lambda o: (o.hlc, o.node_id))
        return best.args["value"]
    if t == "timeseries":
        return sorted((o.args["timestamp"], o.args["value"]) for o in ops)
    if t == "graph":
        vertex_ops = [o for o in ops if o.kind in ("add_vertex", "remove_vertex")]
        edge_ops = [o for o in ops if o.kind in ("add_edge", "remove_edge")]
        vertices = _add_wins(vertex_ops, "vertex")
        edges = _add_wins(edge_ops, "edge")
        live_edges = sorted(e for e in edges if e[0] in vertices and e[1] in vertices)
        return {"vertices": sorted(vertices), "edges": [list(e) for e in live_edges]}
    if t == "workflow":
        assert workflow is not None
        state = workflow["initial"]
        for o in sorted(ops, key=lambda o: (o.hlc, o.node_id)):
            if o.args["to_state"] in workflow["transitions"].get(state, []):
                state = o.args["to_state"]
        return state
    raise AssertionError(t)


def _key(x: Any) -> Any:
    return x


def _add_wins(ops: list[SentOp], field: str) -> set[Any]:
    """Element present iff its newest add is not older than its newest remove (add wins ties)."""
    adds: dict[Any, int] = defaultdict(lambda: -1)
    removes: dict[Any, int] = defaultdict(lambda: -1)
    for o in ops:
        if field == "edge":
            el: Any = (o.args["src"], o.args["dst"])
        else:
            el = o.args[field]
        if o.kind.startswith("add"):
            adds[el] = max(adds[el], o.hlc)
        else:
            removes[el] = max(removes[el], o.hlc)
    return {el for el, t in adds.items() if t >= removes[el]}
