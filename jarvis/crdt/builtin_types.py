"""The seed's eight CRDT types as registry specs (see jarvis/crdt/registry.py).

Each operation maps to one CRDT mutation with explicit metadata: the origin region as the replica
and the operation's HLC as the timestamp, or, where a value must be named the same way on every
region whatever the folding order (time-series points, workflow transitions), the operation's dot.
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.counters import GCounter, PNCounter
from jarvis.crdt.graph import Graph
from jarvis.crdt.gset import GSet
from jarvis.crdt.orset import ORSet
from jarvis.crdt.register import LWWRegister
from jarvis.crdt.registry import Arg, CrdtSpec, Rule, ShapeError, register
from jarvis.crdt.resolvers import category_resolver
from jarvis.crdt.timeseries import TimeSeries
from jarvis.crdt.workflow import Workflow


class GCounterSpec(CrdtSpec):
    name = "gcounter"
    crdt_class = GCounter
    kinds = ("increment",)
    handle = "counter"
    args = {"increment": (Arg("n", "integer", False, "step, default 1"),)}

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        n = int(a.get("n", 1))
        if kind == "increment":
            value.increment(n, node=origin)
        else:
            value.decrement(n, node=origin)

    def check_args(self, kind: str, args: dict[str, Any], rule: Rule, reasons: list[str]) -> None:
        n = args.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            reasons.append(f"counter step must be a non-negative integer, got {n!r}")

    def plot(self, view: Any) -> float:
        return float(view)


class PNCounterSpec(GCounterSpec):
    name = "pncounter"
    crdt_class = PNCounter
    kinds = ("increment", "decrement")
    args = {k: (Arg("n", "integer", False, "step, default 1"),) for k in kinds}


class GSetSpec(CrdtSpec):
    name = "gset"
    crdt_class = GSet
    kinds = ("add",)
    handle = "gset"
    args = {"add": (Arg("element", None),)}

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        value.add(a["element"])

    def plot(self, view: Any) -> float:
        return float(len(view))


class ORSetSpec(GSetSpec):
    name = "orset"
    crdt_class = ORSet
    kinds = ("add", "remove")
    handle = "orset"
    args = {k: (Arg("element", None),) for k in kinds}

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        if kind == "add":
            value.add(a["element"], timestamp=hlc, node=origin)
        else:
            value.remove(a["element"], before=hlc)


class LWWSpec(CrdtSpec):
    name = "lww"
    crdt_class = LWWRegister
    kinds = ("write",)
    handle = "register"
    args = {"write": (Arg("value", None), Arg("category", "string", False, "for a category resolver"))}

    def new(
        self,
        replica: str,
        *,
        workflow: dict[str, Any] | None = None,
        max_points: int | None = None,
        resolver: str | None = None,
    ) -> Any:
        if resolver == "category":
            return LWWRegister(replica, resolver=category_resolver)
        return LWWRegister(replica)

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        v = a.get("value")
        if "category" in a:
            v = {"category": a["category"], "value": v}
        value.write(v, timestamp=hlc, node=node_id)

    def plot(self, view: Any) -> float:
        inner = view.get("value") if isinstance(view, dict) else view
        return float(inner) if isinstance(inner, int | float) and not isinstance(inner, bool) else 0.0


class TimeSeriesSpec(CrdtSpec):
    name = "timeseries"
    crdt_class = TimeSeries
    kinds = ("append",)
    handle = "timeseries"
    args = {
        "append": (
            Arg("timestamp", "number", doc="epoch seconds"),
            Arg("value", "number"),
            Arg("metadata", "object", False),
        )
    }
    kind_aliases = {"append_data_point": "append"}

    def new(
        self,
        replica: str,
        *,
        workflow: dict[str, Any] | None = None,
        max_points: int | None = None,
        resolver: str | None = None,
    ) -> Any:
        return TimeSeries(replica, max_points=max_points)

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        # The point is named by its dot: the same on every region, whatever the folding order.
        value.append_data_point(
            a["timestamp"], a["value"], a.get("metadata"), node=f"{origin}/{partition}", seq=(offset << 20) | index
        )  # fmt: skip

    def check_args(self, kind: str, args: dict[str, Any], rule: Rule, reasons: list[str]) -> None:
        if rule.value_range and kind == "append":
            lo, hi = rule.value_range
            v = args.get("value")
            if isinstance(v, int | float) and not lo <= v <= hi:
                reasons.append(f"value {v} outside the pipeline's range [{lo:g}, {hi:g}]")

    def plot(self, view: Any) -> float:
        return float(view[-1]["value"]) if view and isinstance(view[-1]["value"], int | float) else 0.0


class GraphSpec(CrdtSpec):
    name = "graph"
    crdt_class = Graph
    kinds = ("add_vertex", "remove_vertex", "add_edge", "remove_edge")
    handle = "graph"
    args = {
        "add_vertex": (Arg("vertex", "string"),),
        "remove_vertex": (Arg("vertex", "string"),),
        "add_edge": (Arg("src", "string"), Arg("dst", "string")),
        "remove_edge": (Arg("src", "string"), Arg("dst", "string")),
    }

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        if kind == "add_vertex":
            value.add_vertex(a["vertex"], timestamp=hlc, node=origin)
        elif kind == "remove_vertex":
            value.remove_vertex(a["vertex"], before=hlc)
        elif kind == "add_edge":
            value.add_edge(a["src"], a["dst"], timestamp=hlc, node=origin)
        else:
            value.remove_edge(a["src"], a["dst"], before=hlc)

    def plot(self, view: Any) -> float:
        return float(len(view["vertices"]))


class WorkflowSpec(CrdtSpec):
    name = "workflow"
    crdt_class = Workflow
    kinds = ("transition",)
    handle = "workflow"
    args = {"transition": (Arg("to_state", "string"), Arg("args", "object", False))}

    def new(
        self,
        replica: str,
        *,
        workflow: dict[str, Any] | None = None,
        max_points: int | None = None,
        resolver: str | None = None,
    ) -> Any:
        if workflow is None:
            raise ShapeError("a workflow object needs its definition")
        return Workflow(replica, workflow)

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        value.record_transition(
            a["to_state"], timestamp=hlc, node=node_id, args=a.get("args") or {}, seq=(offset << 20) | index
        )  # fmt: skip

    def check_args(self, kind: str, args: dict[str, Any], rule: Rule, reasons: list[str]) -> None:
        if kind == "transition" and rule.workflow and args.get("to_state") not in rule.workflow.states:
            reasons.append(f"unknown workflow state {args.get('to_state')!r} for {rule.workflow.name}")

    def plot(self, view: Any) -> float:
        return float(sum(1 for h in view["history"] if h["applied"]))


for _spec in (
    GCounterSpec(), PNCounterSpec(), GSetSpec(), ORSetSpec(), LWWSpec(), TimeSeriesSpec(), GraphSpec(), WorkflowSpec()
):  # fmt: skip
    register(_spec)
