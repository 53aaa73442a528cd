"""Maps of nested CRDTs (`map`) as a registry spec.

  update {key, type, kind, args}   one operation of the nested CRDT (counter, register, set, text)
                                   at `key`; folded with the origin region as the node and the
                                   operation's HLC as the timestamp, so the dot a write or an add
                                   gets is the origin's next one on every region
  remove {key, observed}           AntidoteDB's remove-resets: `observed` is the delta of
                                   Map.remove(key) made by the client from the state it read (the
                                   view's `state`); the fold merges it, which removes exactly what the
                                   client had seen, so a concurrent update survives

A nested text takes only `update` here (a base64 Yrs update made by the client's document): an
index means something only in the document that made the edit.
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.errors import CrdtError
from jarvis.crdt.map import NESTED_KINDS, Map
from jarvis.crdt.registry import Arg, CrdtSpec, Rule, register
from jarvis.crdt.text_spec import update_problem

PIPELINE_NESTED_KINDS = {**NESTED_KINDS, "text": ("update",)}


def update_args_problem(args: dict[str, Any]) -> str | None:
    k, t, kind, nested = args.get("key"), args.get("type"), args.get("kind"), args.get("args", {})
    if not isinstance(k, str) or not k:
        return f"map update needs a key (a non-empty string), got {k!r}"
    kinds = PIPELINE_NESTED_KINDS.get(t) if isinstance(t, str) else None
    if kinds is None:
        return f"unknown nested type {t!r} in a map; known: {', '.join(PIPELINE_NESTED_KINDS)}"
    if kind not in kinds:
        return f"a map's {t} has no operation {kind!r} in the pipeline; it has {', '.join(kinds)}"
    if not isinstance(nested, dict):
        return f"map update's args must be an object, got {type(nested).__name__}"
    if t == "counter":
        n = nested.get("n", 1)
        if type(n) is not int or n < 0:
            return f"map counter step must be a non-negative integer, got {n!r}"
    elif t == "set" and "element" not in nested:
        return "a map set operation needs 'element'"
    elif t == "text":
        return update_problem(nested.get("update"), "map text")
    return None


def remove_args_problem(args: dict[str, Any]) -> str | None:
    k, observed = args.get("key"), args.get("observed")
    if not isinstance(k, str) or not k:
        return f"map remove needs a key (a non-empty string), got {k!r}"
    if not isinstance(observed, dict):
        return "map remove needs 'observed': the delta of Map.remove made from the state the client read"
    try:
        delta = Map.from_dict(observed)
    except (CrdtError, KeyError, TypeError, ValueError) as e:
        return f"map remove's observed delta is malformed: {type(e).__name__}: {e}"
    others = sorted({f[0] for f in delta.fields if f[0] != k})
    if others:
        return f"map remove of {k!r} carries fields of other keys: {', '.join(others[:5])}"
    return None


class MapSpec(CrdtSpec):
    name = "map"
    crdt_class = Map
    kinds = ("update", "remove")
    handle = "map"
    args = {
        "update": (
            Arg("key", "string"), Arg("type", "string", True, "the nested CRDT type"),
            Arg("kind", "string", True, "the nested operation"), Arg("args", "object", False),
        ),
        "remove": (Arg("key", "string"), Arg("observed", "object", True, "what the client saw of the key")),
    }  # fmt: skip

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        if kind == "update":
            why = update_args_problem(a)  # the verifier checked it; a mirrored record is checked again
            if why:
                raise CrdtError(why)
            value.update(a["key"], a["type"], a["kind"], a.get("args") or {}, timestamp=hlc, node=origin, blind=True)
        else:
            why = remove_args_problem(a)
            if why:
                raise CrdtError(why)
            value.merge(Map.from_dict(a["observed"]))

    def check_args(self, kind: str, args: dict[str, Any], rule: Rule, reasons: list[str]) -> None:
        why = update_args_problem(args) if kind == "update" else remove_args_problem(args)
        if why:
            reasons.append(why)

    def view(self, value: Any) -> Any:
        # The state too: a remove carries what its client observed, made from this.
        return {"entries": value.value(), "state": value.to_dict()}

    def plot(self, view: Any) -> float:
        return float(len(view["entries"]))


register(MapSpec())
