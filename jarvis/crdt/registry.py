"""The CRDT type registry: everything the pipeline knows about a type, written once per type.

A type is a `CrdtSpec`: its wire name, its CRDT class, its operation kinds, how each operation's
arguments are checked (the verifier's rules), how an operation is folded into the CRDT (the fold
and replay), how an empty object is made, what the query view and the replay timeline show, and
which SDK handle produces it. The op model, the verifier's gate, the fold, replay, the pipeline
loader and the SDK read their type knowledge from here, so adding a type is one module holding its
spec and one `register(...)` call. The eight built-in types live in jarvis/crdt/builtin_types.py.

The flat tables below (KINDS, VALID_PAIRS, CLASSES, MUTATORS, ARG_CHECKS, HANDLES) are derived from the
specs by `register`, and updated in place: the hot paths (decoding validation, the fold's loop, the
gate's rule check) keep a reference to them and pay one dict lookup per operation, not a walk
through a spec's attributes.

Pure: standard library only, like the rest of jarvis.crdt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from jarvis.errors import JarvisError

# (value, kind, args, hlc, node_id, origin region, ingress partition, ingress offset, index in batch):
# everything the fold knows about one new operation; the dot's parts come separately so that the
# fold never builds a Dot per operation.
Mutator = Callable[[Any, str, dict[str, Any], int, str, str, int, int, int], None]


class Rule(Protocol):
    """What an argument check may read of the object's pipeline rule (pipelines.loader.PrefixRule)."""

    @property
    def value_range(self) -> tuple[float, float] | None: ...

    @property
    def workflow(self) -> Any: ...  # a WorkflowDef (with .states and .name) or None


# (kind, args, the object's pipeline rule, reasons): appends why the arguments are not acceptable.
ArgCheck = Callable[[str, dict[str, Any], Any, list[str]], None]


class ShapeError(JarvisError, ValueError):
    """An object of this type cannot be created from what its pipeline gives (e.g. no definition)."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of an operation kind, as a JSON client sends it (the ingest gateway, its OpenAPI
    document and the SDK's handles agree on these). `json_type` is a JSON Schema type name
    ("string", "integer", "number", "object", ...) or None for any JSON value."""

    name: str
    json_type: str | None
    required: bool = True
    doc: str = ""


class CrdtSpec:
    """One CRDT type. Subclass it, set the class attributes, implement `mutate`, and register an
    instance. Override `check_args`, `new`, `view` or `plot` where the defaults do not fit."""

    name: ClassVar[str]  # the wire name (Operation.crdt_type, the pipeline file's `type:`)
    crdt_class: ClassVar[type]  # has value(), to_dict() and from_dict(d): the changelog stores it so
    kinds: ClassVar[tuple[str, ...]]  # the operation names it accepts
    handle: ClassVar[str | None] = None  # the SDK's Client method producing it (client.<handle>(id))
    # Per kind, its arguments; a kind missing here takes any JSON object (types defined in a test).
    args: ClassVar[Mapping[str, tuple[Arg, ...]]] = {}
    # The SDK's method names where they differ from the wire kind (append_data_point -> append):
    # a JSON client may use either.
    kind_aliases: ClassVar[Mapping[str, str]] = {}
    # The verifier's per-type argument rules; None: the generic checks (size, ranges) are all.
    check_args: ArgCheck | None = None

    def mutate(
        self,
        value: Any,
        kind: str,
        args: dict[str, Any],
        hlc: int,
        node_id: str,
        origin: str,
        partition: int,
        offset: int,
        index: int,
    ) -> None:
        """Apply one operation (known to be new) to `value`, deterministically: every region folding
        the same operations reaches the same state, so only the arguments, the HLC, the producing
        node and the dot may decide the outcome."""
        raise NotImplementedError

    def new(
        self,
        replica: str,
        *,
        workflow: dict[str, Any] | None = None,
        max_points: int | None = None,
        resolver: str | None = None,
    ) -> Any:
        """An empty value, shaped by the object's pipeline (workflow definition, bounds, resolver)."""
        return self.crdt_class(replica)

    def view(self, value: Any) -> Any:
        """The value the query API serves."""
        return value.value()

    def plot(self, view: Any) -> float:
        """One number for a replay timeline, from `view(value)`."""
        return 0.0


SPECS: dict[str, CrdtSpec] = {}
KINDS: dict[str, tuple[str, ...]] = {}
VALID_PAIRS: set[tuple[str, str]] = set()  # (type, kind)
CLASSES: dict[str, type] = {}
MUTATORS: dict[str, Mutator] = {}
ARG_CHECKS: dict[str, ArgCheck] = {}  # only the types that have per-type argument rules
HANDLES: dict[str, tuple[str, ...]] = {}  # SDK handle -> the types it produces, in registration order


def register(spec: CrdtSpec, *, replace: bool = False) -> CrdtSpec:
    """Make a type known to every part of the pipeline. Returns the spec."""
    name = spec.name
    if not name or not name.isidentifier() or name != name.lower():
        raise ValueError(f"CRDT type name {name!r} must be a lower-case identifier")
    if not spec.kinds:
        raise ValueError(f"CRDT type {name!r} has no operation kinds")
    if name in SPECS:
        if not replace:
            raise ValueError(f"CRDT type {name!r} is registered already")
        unregister(name)
    SPECS[name] = spec
    KINDS[name] = tuple(spec.kinds)
    VALID_PAIRS.update((name, k) for k in spec.kinds)
    CLASSES[name] = spec.crdt_class
    MUTATORS[name] = spec.mutate
    if spec.check_args is not None:
        ARG_CHECKS[name] = spec.check_args
    if spec.handle is not None:
        HANDLES[spec.handle] = (*HANDLES.get(spec.handle, ()), name)
    return spec


def unregister(name: str) -> None:
    """Forget a type (tests that register one of their own clean up with this)."""
    SPECS.pop(name, None)
    for k in KINDS.pop(name, ()):
        VALID_PAIRS.discard((name, k))
    CLASSES.pop(name, None)
    MUTATORS.pop(name, None)
    ARG_CHECKS.pop(name, None)
    for handle, types in list(HANDLES.items()):
        if name in types:
            rest = tuple(t for t in types if t != name)
            if rest:
                HANDLES[handle] = rest
            else:
                del HANDLES[handle]


def get(name: str) -> CrdtSpec | None:
    return SPECS.get(name)


def names() -> tuple[str, ...]:
    return tuple(SPECS)


def handle_types(handle: str) -> tuple[str, ...]:
    """The types an SDK handle produces, in registration order."""
    return HANDLES.get(handle, ())
