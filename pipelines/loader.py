"""Load and validate pipeline definitions (pipelines/default.yaml or JARVIS_PIPELINES).

A pipeline groups object prefixes; each prefix fixes the CRDT type of its objects and the rules the
verifier applies to their operations. `Pipelines.rule_for(object_id)` is the one lookup every role
uses: the SDK (types, encrypted fields), the verifier (rules), the fold (workflow definitions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from jarvis.config import settings
from jarvis.crdt import registry as crdt_registry
from jarvis.errors import JarvisError
from jarvis.materialize import ObjectState, new_state

DEFAULT_FILE = files("pipelines") / "default.yaml"  # package data: found in an installed wheel too

CRDT_TYPES = crdt_registry.SPECS  # every registered type (a live table: `in` is what is asked of it)


class PipelineError(JarvisError, ValueError):
    """The pipeline file is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class WorkflowDef:
    name: str
    initial: str
    states: tuple[str, ...]
    transitions: dict[str, tuple[str, ...]]
    deadlines: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "initial": self.initial,
            "states": list(self.states),
            "transitions": {k: list(v) for k, v in self.transitions.items()},
            "deadlines": dict(self.deadlines),
        }


@dataclass(frozen=True)
class PrefixRule:
    pipeline: str
    prefix: str
    crdt_type: str
    max_payload_bytes: int
    max_abs_number: float
    replay_window_s: float
    max_future_s: float
    min_confidence: float
    encrypt: tuple[str, ...] = ()
    value_range: tuple[float, float] | None = None
    telemetry: bool = False
    max_points: int | None = None
    workflow: WorkflowDef | None = None
    resolver: str | None = None
    bound: int | None = None  # a bounded counter's bound: `min:` in the file
    # Read and written only by clinical roles (jarvis/security/apikeys.py), audited on every read.
    clinical: bool = False


@dataclass(frozen=True)
class Pipelines:
    rules: dict[str, PrefixRule]
    workflows: dict[str, WorkflowDef]
    source: Path | Traversable

    def rule_for(self, object_id: str) -> PrefixRule | None:
        prefix, sep, rest = object_id.partition(":")
        if not sep or not rest:
            return None
        return self.rules.get(prefix)

    def prefixes(self) -> list[str]:
        return sorted(self.rules)

    def clinical(self, object_id: str) -> bool:
        rule = self.rule_for(object_id)
        return rule is not None and rule.clinical

    def clinical_prefixes(self) -> list[str]:
        return sorted(p for p, r in self.rules.items() if r.clinical)


def _workflow(name: str, raw: dict[str, Any]) -> WorkflowDef:
    try:
        states = tuple(raw["states"])
        initial = raw["initial"]
        transitions = {k: tuple(v) for k, v in (raw.get("transitions") or {}).items()}
    except (KeyError, TypeError) as e:
        raise PipelineError(f"workflow {name!r}: missing or malformed {e}") from None
    if initial not in states:
        raise PipelineError(f"workflow {name!r}: initial state {initial!r} is not in states")
    for src, dsts in transitions.items():
        for s in (src, *dsts):
            if s not in states:
                raise PipelineError(f"workflow {name!r}: transition names unknown state {s!r}")
    deadlines = {k: float(v) for k, v in (raw.get("deadlines") or {}).items()}
    return WorkflowDef(name, initial, states, transitions, deadlines)


def load(path: Path | None = None) -> Pipelines:
    given = path or settings().pipelines_file  # a file (JARVIS_PIPELINES) overrides the packaged default
    file: Path | Traversable = Path(given) if given else DEFAULT_FILE
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PipelineError(f"cannot read pipeline file {file}: {e}") from None
    defaults = raw.get("defaults") or {}
    workflows = {n: _workflow(n, w) for n, w in (raw.get("workflows") or {}).items()}
    rules: dict[str, PrefixRule] = {}
    for pname, pipeline in (raw.get("pipelines") or {}).items():
        for prefix, spec in ((pipeline or {}).get("prefixes") or {}).items():
            spec = {**defaults, **(spec or {})}
            ctype = spec.get("type")
            if ctype not in CRDT_TYPES:
                raise PipelineError(f"{pname}.{prefix}: unknown CRDT type {ctype!r}")
            if prefix in rules:
                raise PipelineError(f"prefix {prefix!r} is defined twice ({rules[prefix].pipeline}, {pname})")
            wf = None
            if ctype == "workflow":
                wname = spec.get("workflow")
                if wname not in workflows:
                    raise PipelineError(f"{pname}.{prefix}: unknown workflow {wname!r}")
                wf = workflows[wname]
            vr = spec.get("value_range")
            bound = spec.get("min")
            clinical = spec.get("clinical", False)
            if type(clinical) is not bool:
                raise PipelineError(f"{pname}.{prefix}: clinical must be true or false, got {clinical!r}")
            if bound is not None and type(bound) is not int:
                raise PipelineError(f"{pname}.{prefix}: min must be an integer, got {bound!r}")
            rules[prefix] = PrefixRule(
                pipeline=pname,
                prefix=prefix,
                crdt_type=ctype,
                max_payload_bytes=int(spec.get("max_payload_bytes", 16384)),
                max_abs_number=float(spec.get("max_abs_number", 1e12)),
                replay_window_s=float(spec.get("replay_window_s", 86400)),
                max_future_s=float(spec.get("max_future_s", 300)),
                min_confidence=float(spec.get("min_confidence", 0.0)),
                encrypt=tuple(spec.get("encrypt") or ()),
                value_range=(float(vr[0]), float(vr[1])) if vr else None,
                telemetry=bool(spec.get("telemetry", False)),
                max_points=spec.get("max_points"),
                workflow=wf,
                resolver=spec.get("resolver"),
                bound=bound,
                clinical=clinical,
            )
    return Pipelines(rules=rules, workflows=workflows, source=file)


@cache
def pipelines() -> Pipelines:
    return load()


def object_factory(pipes: Pipelines) -> Callable[[str, str], ObjectState]:
    """New, empty objects shaped by their pipeline (workflow definition, bounds, resolver): the fold,
    replays and snapshots all create objects through this."""

    def create(object_id: str, crdt_type: str) -> ObjectState:
        rule = pipes.rule_for(object_id)
        return new_state(
            object_id,
            crdt_type,
            workflow=rule.workflow.as_dict() if rule and rule.workflow else None,
            max_points=rule.max_points if rule else None,
            resolver=rule.resolver if rule else None,
            bound=rule.bound if rule else None,
        )

    return create
