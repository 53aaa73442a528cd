"""The verifier's decision for one ingress message: the seed's Data Verifier as a pure gate.

Checks, in order: the bytes decode as an OperationBatch (schema); the batch signature verifies
against the region's trust store; then every operation: its content digest matches the signed one,
its timestamp lies in the replay window, and the pipeline's rules hold (known prefix, CRDT type and
kind, payload size, number ranges, encrypted fields really encrypted). Verifiers are pluggable: each
returns reasons (reject) and a confidence in [0, 1]; the rule-based and statistical ones are built
in, and an LLM-backed one can be plugged in (off by default).

A failure of the whole message (garbage bytes, bad signature) rejects every operation in it with
that reason; a failing operation is rejected alone, and the rest of its batch goes on.

With a schema registry (`framing`), a message in the Confluent wire format is first turned into the
single-object message the rest of the pipeline reads (jarvis/codec/registry.py); the result's
`message` is what the verifier forwards.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from jarvis.codec import CodecError
from jarvis.codec.column_digests import decode_batch_checked
from jarvis.codec.registry import RegistryUnavailable, explain_unframed
from jarvis.ops import Operation, OperationBatch
from jarvis.security.replay_window import check_window
from jarvis.security.signing import SignatureError, verify_batch
from pipelines.loader import Pipelines, PrefixRule


@dataclass(slots=True)
class Accepted:
    index: int  # in the batch: with the ingress partition and offset, the operation's dot
    op: Operation
    confidence: float


@dataclass(slots=True)
class Rejected:
    reasons: list[str]
    index: int | None = None  # None: the whole message
    op: Operation | None = None


@dataclass(slots=True)
class GateResult:
    batch: OperationBatch | None
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    message: bytes = b""  # the checked message in single-object form: what jarvis.ops carries


class OpVerifier(Protocol):
    """A pluggable check: reasons to reject (empty if fine) and a confidence in [0, 1]."""

    name: str

    def check(self, op: Operation, rule: PrefixRule) -> tuple[list[str], float]: ...


class RuleVerifier:
    """Pipeline rules: prefix, type, kind, payload size, number ranges, encryption."""

    name = "rules"

    def check(self, op: Operation, rule: PrefixRule) -> tuple[list[str], float]:
        reasons: list[str] = []
        if op.crdt_type != rule.crdt_type:
            reasons.append(f"prefix {rule.prefix!r} holds {rule.crdt_type} objects, not {op.crdt_type}")
        size = len(orjson.dumps(op.args))
        if size > rule.max_payload_bytes:
            reasons.append(f"payload of {size} bytes exceeds the limit of {rule.max_payload_bytes}")
        limit = rule.max_abs_number
        for k, v in op.args.items():
            # Flat numbers are the common case and are checked inline; containers are walked.
            t = type(v)
            if t is int or t is float:
                if not -limit <= v <= limit:  # NaN fails both comparisons
                    reasons.append(f"number {float(v)!r} at args.{k} is out of range (|x| <= {limit:g})")
            elif t is dict or t is list:
                for path, num in _numbers(v, f"args.{k}"):
                    if not math.isfinite(num) or abs(num) > limit:
                        reasons.append(f"number {num!r} at {path} is out of range (|x| <= {limit:g})")
        if rule.value_range and op.kind == "append":
            lo, hi = rule.value_range
            v = op.args.get("value")
            if isinstance(v, int | float) and not lo <= v <= hi:
                reasons.append(f"value {v} outside the pipeline's range [{lo:g}, {hi:g}]")
        for name in rule.encrypt:
            if name in op.args and name not in op.encrypted_fields:
                reasons.append(f"field {name!r} must be encrypted by the producer (pipeline {rule.pipeline})")
        if op.crdt_type in ("gcounter", "pncounter"):
            n = op.args.get("n", 1)
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                reasons.append(f"counter step must be a non-negative integer, got {n!r}")
        if op.kind == "transition" and rule.workflow and op.args.get("to_state") not in rule.workflow.states:
            reasons.append(f"unknown workflow state {op.args.get('to_state')!r} for {rule.workflow.name}")
        return reasons, 1.0


class TelemetryVerifier:
    """Robust z-score of a telemetry value against the object's recent values (median / MAD).

    Confidence = exp(-max(0, z - 3.5) / 3): values inside the usual band score 1.0, outliers fall
    towards 0; an operation is rejected when confidence < the pipeline's min_confidence.
    """

    name = "telemetry"

    def __init__(self, window: int = 200, max_objects: int = 100_000) -> None:
        self.window = window
        self.max_objects = max_objects
        self._recent: dict[str, deque[float]] = {}

    def check(self, op: Operation, rule: PrefixRule) -> tuple[list[str], float]:
        if not rule.telemetry or op.kind != "append":
            return [], 1.0
        v = op.args.get("value")
        if not isinstance(v, int | float):
            return ["telemetry value must be a number"], 0.0
        hist = self._recent.get(op.object_id)
        if hist is None:
            if len(self._recent) >= self.max_objects:
                self._recent.pop(next(iter(self._recent)))
            hist = self._recent[op.object_id] = deque(maxlen=self.window)
        confidence = robust_confidence(hist, float(v))
        hist.append(float(v))
        if confidence < rule.min_confidence:
            return [f"telemetry outlier: confidence {confidence:.3f} < {rule.min_confidence}"], confidence
        return [], confidence


def robust_confidence(history: Sequence[float] | deque[float], v: float) -> float:
    if len(history) < 10:
        return 1.0
    s = sorted(history)
    med = s[len(s) // 2]
    mad = sorted(abs(x - med) for x in s)[len(s) // 2]
    if mad == 0:
        return 1.0 if v == med else 0.0
    z = 0.6745 * abs(v - med) / mad
    return math.exp(-max(0.0, z - 3.5) / 3.0)


def _numbers(obj: Any, path: str = "args") -> Iterable[tuple[str, float]]:
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        yield path, float(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")


UNKNOWN_PREFIX_WINDOW = (86400.0, 300.0)  # replay window, future tolerance (s) of an unknown prefix


class Gate:
    def __init__(
        self,
        region: str,
        pipelines: Pipelines,
        trust: Any,
        verifiers: Sequence[OpVerifier] | None = None,
        framing: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.region = region
        self.pipelines = pipelines
        self.trust = trust
        self.verifiers = list(verifiers) if verifiers is not None else [RuleVerifier(), TelemetryVerifier()]
        # RegistryCodec.to_single_object when a registry is configured. Its RegistryUnavailable is
        # not the message's fault, so it is not a rejection: it reaches the caller, which retries.
        self.framing = framing
        windows = [(r.replay_window_s, r.max_future_s) for r in pipelines.rules.values()]
        self._narrowest_window = (
            min(w for w, _ in [*windows, UNKNOWN_PREFIX_WINDOW]),
            min(f for _, f in [*windows, UNKNOWN_PREFIX_WINDOW]),
        )

    def check(self, data: bytes, partition: int, offset: int, now_ms: int) -> GateResult:
        try:
            if self.framing is not None:
                data = self.framing(data)
            batch, hashed, noncanonical = decode_batch_checked(data)
        except CodecError as e:
            why = explain_unframed(data) if self.framing is None else None
            return GateResult(None, rejected=[Rejected([f"undecodable message: {why or e}"])])
        except RegistryUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder failure is a rejection, never a crash
            return GateResult(None, rejected=[Rejected([f"undecodable message: {type(e).__name__}: {e}"])])
        if not batch.ops:
            return GateResult(batch, rejected=[Rejected(["empty batch"])], message=data)
        key = self.trust.public_key(batch.key_id) if hasattr(self.trust, "public_key") else None
        if key is None or not self.trust.is_trusted(self.region, batch.node_id, batch.key_id):
            reason = f"unknown or untrusted key {batch.key_id!r} for node {batch.node_id!r} in region {self.region}"
            return GateResult(batch, rejected=[Rejected([reason], i, op) for i, op in enumerate(batch.ops)])
        try:
            verify_batch(batch.op_digests, batch.signature, key)
        except SignatureError as e:
            return GateResult(
                batch, rejected=[Rejected([f"bad signature: {e}"], i, op) for i, op in enumerate(batch.ops)]
            )
        result = GateResult(batch, message=data)
        ops = batch.ops
        # Checks that hold for a whole batch are made once; an operation is examined on its own only
        # in a batch that fails one of them (or for an object no pipeline knows).
        signed = batch.op_digests
        altered = (
            set()
            if hashed == signed
            else {i for i in range(len(ops)) if hashed[i * 32 : (i + 1) * 32] != signed[i * 32 : (i + 1) * 32]}
        )
        odd_args = set(noncanonical)
        suspect = bool(
            altered
            or odd_args
            or {op.node_id for op in ops} != {batch.node_id}
            or not self._in_window(min(op.hlc for op in ops), max(op.hlc for op in ops), now_ms)
        )
        verifiers = self.verifiers
        rule_for = self.pipelines.rule_for
        for i, op in enumerate(ops):
            rule = rule_for(op.object_id)
            reasons = (
                self._check_op(i, batch.node_id, op, rule, now_ms, i in altered, i in odd_args)
                if suspect or rule is None
                else []
            )
            confidence = 1.0
            if not reasons and rule is not None:
                for v in verifiers:
                    r, c = v.check(op, rule)
                    if r:
                        reasons += r
                    if c < confidence:
                        confidence = c
            if reasons:
                result.rejected.append(Rejected(reasons, i, op))
            else:
                result.accepted.append(Accepted(i, op, confidence))
        return result

    def _in_window(self, oldest_hlc: int, newest_hlc: int, now_ms: int) -> bool:
        """Every timestamp between these two lies in the narrowest replay window of any pipeline."""
        age, future = self._narrowest_window
        return (
            check_window(oldest_hlc, now_ms, max_age_s=age, max_future_s=future) is None
            and check_window(newest_hlc, now_ms, max_age_s=age, max_future_s=future) is None
        )

    @staticmethod
    def _check_op(
        i: int,
        node_id: str,
        op: Operation,
        rule: PrefixRule | None,
        now_ms: int,
        altered: bool,
        odd_args: bool,
    ) -> list[str]:
        reasons = []
        if altered:
            reasons.append(f"digest mismatch for op {i}: content altered after signing")
        if odd_args:
            reasons.append(
                f"args_json of op {i} is not canonical JSON (sorted keys, no spaces): its digest could "
                "not be checked again in an audit"
            )
        if op.node_id != node_id:
            reasons.append(f"op node {op.node_id!r} differs from the batch signer {node_id!r}")
        if rule is None:
            prefix = op.object_id.partition(":")[0]
            reasons.append(f"unknown object prefix {prefix!r} (no pipeline defines it)")
            window_s, future_s = UNKNOWN_PREFIX_WINDOW
        else:
            window_s, future_s = rule.replay_window_s, rule.max_future_s
        why = check_window(op.hlc, now_ms, max_age_s=window_s, max_future_s=future_s)
        if why:
            reasons.append(why)
        return reasons
