"""Operations as JSON clients write them: `{"object_id": "ctr:a", "kind": "increment", "args": {"n": 3}}`.

The vocabulary is the CRDT type registry's (jarvis/crdt/registry.py): the kinds of the object's
type, the SDK's method names as aliases (`append_data_point` for `append`), and each kind's `Arg`s.
The CRDT type comes from the object's pipeline, as for `jarvis produce`; a `"type"` given is
checked against it. `parse_op` returns every reason an operation is refused, not only the first,
so an HTTP client fixes everything in one round.

Pure: no I/O; the pipeline lookup is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from jarvis.crdt import registry as crdt_registry
from jarvis.errors import JarvisError
from jarvis.ops import OBJECT_ID, object_id_too_long

TOP_LEVEL_KEYS = frozenset({"object_id", "kind", "args", "type"})


class HasType(Protocol):
    @property
    def crdt_type(self) -> str: ...


class OpInputError(JarvisError, ValueError):
    """A JSON operation that cannot become an Operation; `reasons` says every why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True, slots=True)
class JsonOp:
    object_id: str
    crdt_type: str
    kind: str  # the wire kind (an alias resolved)
    args: dict[str, Any]


def _is_type(value: Any, json_type: str | None) -> bool:
    if json_type is None:
        return True
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if json_type == "object":
        return isinstance(value, dict)
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "boolean":
        return isinstance(value, bool)
    raise ValueError(f"unknown JSON type {json_type!r} in the CRDT registry")


def wire_kind(crdt_type: str, kind: str) -> str | None:
    """The registry's kind for `kind` (itself or what an alias names); None if the type has none."""
    spec = crdt_registry.get(crdt_type)
    if spec is None:
        return None
    kind = spec.kind_aliases.get(kind, kind)
    return kind if kind in spec.kinds else None


def check_args(crdt_type: str, kind: str, args: dict[str, Any], *, extras: bool = True) -> list[str]:
    """Why `args` do not fit the registry's arguments of `kind` (empty if they do). With
    `extras=False`, arguments the registry does not declare are let through: the verifier's view,
    since SDK handles send a few more than a JSON client may (the text handle's index and s)."""
    spec = crdt_registry.get(crdt_type)
    declared = spec.args.get(kind) if spec is not None else None
    if declared is None:
        return []
    reasons: list[str] = []
    names = {a.name for a in declared}
    for a in declared:
        if a.name not in args:
            if a.required:
                reasons.append(f"args.{a.name} is required for {kind}")
        elif not _is_type(args[a.name], a.json_type):
            if a.json_type == "number":
                reasons.append(f"args.{a.name} must be a finite number")
            else:
                article = "an" if a.json_type and a.json_type[0] in "aeiou" else "a"
                reasons.append(f"args.{a.name} must be {article} {a.json_type}, got {type(args[a.name]).__name__}")
    if not extras:
        return reasons
    for extra in sorted(set(args) - names):
        reasons.append(f"{kind} takes no argument {extra!r} (it takes {', '.join(sorted(names)) or 'none'})")
    return reasons


def parse_op(d: Any, rule_for: Callable[[str], HasType | None]) -> JsonOp:
    """A decoded JSON value as an operation of the pipeline, or OpInputError with every reason."""
    if not isinstance(d, dict):
        raise OpInputError([f"an operation must be a JSON object, got {_json_name(d)}"])
    reasons = [f"unknown field {k!r} (an operation has object_id, kind, args, type)"
               for k in sorted(set(d) - TOP_LEVEL_KEYS)]  # fmt: skip
    oid, kind, args = d.get("object_id"), d.get("kind"), d.get("args", {})
    if not isinstance(oid, str):
        reasons.append("object_id must be a string")
    if not isinstance(kind, str):
        reasons.append("kind must be a string")
    if not isinstance(args, dict):
        reasons.append("args must be a JSON object")
    if reasons:
        raise OpInputError(reasons)
    too_long = object_id_too_long(oid)
    if too_long:
        raise OpInputError([too_long])
    if not OBJECT_ID.match(oid) or "\n" in oid:
        raise OpInputError([f"object id {oid[:80]!r} must look like '<prefix>:<id>' (prefix: a-z 0-9 _ -)"])
    rule = rule_for(oid)
    if rule is None:
        raise OpInputError([f"no pipeline defines the prefix {oid.partition(':')[0]!r}"])
    crdt_type = rule.crdt_type
    if d.get("type") not in (None, crdt_type):
        raise OpInputError([f"{oid} is a {crdt_type}, the operation says {d['type']!r}"])
    wk = wire_kind(crdt_type, kind)
    if wk is None:
        spec = crdt_registry.get(crdt_type)
        known = [*spec.kinds, *spec.kind_aliases] if spec else []
        raise OpInputError([f"a {crdt_type} has no operation {kind[:80]!r}; it has {', '.join(known)}"])
    bad = check_args(crdt_type, wk, args)
    if bad:
        raise OpInputError(bad)
    return JsonOp(oid, crdt_type, wk, args)


class OpParser:
    """`parse_op` for a gateway, which sees the same objects and kinds again and again: an object id
    found valid, with its pipeline's rule, and a (type, kind) found known are remembered, so a
    repeat checks only its fields and args. Anything unusual takes `parse_op` itself, which gives
    every reason; the two agree on every input (a property test holds them equal)."""

    def __init__(self, rule_for: Callable[[str], HasType | None], max_objects: int = 100_000) -> None:
        self._rule_for = rule_for
        self._max_objects = max_objects
        self._types: dict[str, str] = {}  # valid object id -> its CRDT type
        self._kinds: dict[tuple[str, str], str] = {}  # (type, kind as sent) -> the wire kind

    def parse(self, d: Any) -> JsonOp:
        if type(d) is dict and d.keys() <= TOP_LEVEL_KEYS:
            oid, kind, args = d.get("object_id"), d.get("kind"), d.get("args", {})
            crdt_type = self._types.get(oid) if type(oid) is str else None
            if crdt_type is not None and type(args) is dict and d.get("type") in (None, crdt_type):
                wk = self._kinds.get((crdt_type, kind)) if type(kind) is str else None
                if wk is not None and not check_args(crdt_type, wk, args):
                    return JsonOp(oid, crdt_type, wk, args)
        jop = parse_op(d, self._rule_for)  # raises with every reason
        if len(self._types) >= self._max_objects:
            self._types.clear()
        self._types[jop.object_id] = jop.crdt_type
        self._kinds[(jop.crdt_type, d["kind"])] = jop.kind
        return jop


def kinds_table() -> dict[str, dict[str, Any]]:
    """Per CRDT type, its kinds (aliases included) and their arguments: what docs and OpenAPI show."""
    out: dict[str, dict[str, Any]] = {}
    for name in crdt_registry.names():
        spec = crdt_registry.SPECS[name]
        kinds: dict[str, Any] = {}
        for k in spec.kinds:
            kinds[k] = [{"name": a.name, "type": a.json_type, "required": a.required}
                        for a in spec.args.get(k, ())]  # fmt: skip
        for alias, k in spec.kind_aliases.items():
            kinds[alias] = kinds[k]
        out[name] = kinds
    return out


def _json_name(v: Any) -> str:
    if isinstance(v, list):
        return "an array"
    if isinstance(v, str):
        return "a string"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    return type(v).__name__
