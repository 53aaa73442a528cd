"""The verifier's decision for one ingress message: the seed's Data Verifier as a pure gate.

Checks, in order: the bytes decode as an OperationBatch (schema); the signing key is trusted for its
node in this region now (jarvis/security/trust.py: an admin-signed grant, not revoked) and the batch
signature verifies with it; then every operation: its object id lies in the grant's write patterns, its content digest matches the signed one,
its object id is at most 1 KB (jarvis.ops.MAX_OBJECT_ID_BYTES), its timestamp lies in the replay window, and the pipeline's rules hold (known prefix, CRDT type and
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
from jarvis.codec.batch_columns import BatchColumns
from jarvis.codec.column_digests import decode_batch_checked
from jarvis.codec.registry import RegistryUnavailable, explain_unframed
from jarvis.crdt import registry as crdt_registry
from jarvis.json_ops import check_args
from jarvis.ops import SURELY_SHORT_OBJECT_ID_CHARS, Operation, object_id_too_long
from jarvis.security.replay_window import check_window
from jarvis.security.seen_batches import Acceptance, SeenBatches, batch_key
from jarvis.security.signing import SignatureError, verify_batch
from jarvis.security.trust import TrustView
from pipelines.loader import Pipelines, PrefixRule


@dataclass(slots=True)
class Rejected:
    reasons: list[str]
    index: int | None = None  # None: the whole message
    op: Operation | None = None


@dataclass(slots=True)
class GateResult:
    batch: BatchColumns | None
    # Indexes in the batch of the accepted operations (with the ingress partition and offset, each
    # one's dot), and the confidence of each.
    accepted: list[int] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    message: bytes = b""  # the checked message in single-object form: what jarvis.ops carries
    # Set when operations were accepted and re-send protection is on: the batch's identity and when
    # it leaves the replay window, for the verifier to record durably (jarvis.ops.seen).
    seen_key: bytes | None = None
    seen_expires_ms: int = 0
    # The whole message was refused because its key is not trusted (unknown, revoked, elsewhere):
    # the verifier may read the trust topics up to date and judge it again.
    untrusted_key: bool = False


class OpVerifier(Protocol):
    """A pluggable check: reasons to reject (empty if fine) and a confidence in [0, 1]."""

    name: str

    def check(self, op: Operation, rule: PrefixRule) -> tuple[list[str], float]: ...

    # Optional: True when, under `rule`, check's outcome depends on nothing but the operation's CRDT
    # type, kind, args and encrypted fields (not its object, time or what came before). The gate
    # then checks each distinct such operation once per batch instead of every operation.
    # def content_only(self, rule: PrefixRule) -> bool: ...


_ARG_CHECKS = crdt_registry.ARG_CHECKS  # per CRDT type; a live table, so a type registered later counts


class RuleVerifier:
    """Pipeline rules: prefix, type, kind, payload size, number ranges, encryption."""

    name = "rules"

    def content_only(self, rule: PrefixRule) -> bool:
        return True

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
        for name in rule.encrypt:
            if name in op.args and name not in op.encrypted_fields:
                reasons.append(f"field {name!r} must be encrypted by the producer (pipeline {rule.pipeline})")
        # The type's own argument rules (counter steps, value ranges, workflow states).
        type_check = _ARG_CHECKS.get(op.crdt_type)
        found = len(reasons)
        if type_check is not None:
            type_check(op.kind, op.args, rule, reasons)
        # Then the arguments the type declares (jarvis/crdt/registry.py Arg): present and of their
        # JSON type, or the fold could not apply an operation it was told was accepted. Only where
        # the type's own rules found nothing, which name the same fault more precisely.
        if len(reasons) == found:
            reasons += check_args(op.crdt_type, op.kind, op.args, extras=False)
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

    def content_only(self, rule: PrefixRule) -> bool:
        return not rule.telemetry  # then every operation passes with confidence 1.0

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
        trust: TrustView,
        verifiers: Sequence[OpVerifier] | None = None,
        framing: Callable[[bytes], bytes] | None = None,
        seen: SeenBatches | None = None,
    ) -> None:
        self.region = region
        # Batches accepted within the window, here and (fed by the verifier) in every other region.
        self.seen = seen
        self.pipelines = pipelines
        self.trust = trust
        self.verifiers = list(verifiers) if verifiers is not None else [RuleVerifier(), TelemetryVerifier()]
        # RegistryCodec.to_single_object when a registry is configured. Its RegistryUnavailable is
        # not the message's fault, so it is not a rejection: it reaches the caller, which retries.
        self.framing = framing
        self._split: dict[str, tuple[list[OpVerifier], list[OpVerifier]]] = {}  # by rule prefix
        windows = [(r.replay_window_s, r.max_future_s) for r in pipelines.rules.values()]
        self._narrowest_window = (
            min(w for w, _ in [*windows, UNKNOWN_PREFIX_WINDOW]),
            min(f for _, f in [*windows, UNKNOWN_PREFIX_WINDOW]),
        )
        self.widest_window_ms = int(max(w for w, _ in [*windows, UNKNOWN_PREFIX_WINDOW]) * 1000)

    def check(self, data: bytes, partition: int, offset: int, now_ms: int) -> GateResult:
        try:
            if self.framing is not None:
                data = self.framing(data)
            cols, hashed, noncanonical = decode_batch_checked(data)
        except CodecError as e:
            why = explain_unframed(data) if self.framing is None else None
            return GateResult(None, rejected=[Rejected([f"undecodable message: {why or e}"])])
        except RegistryUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder failure is a rejection, never a crash
            return GateResult(None, rejected=[Rejected([f"undecodable message: {type(e).__name__}: {e}"])])
        n = len(cols)
        if not n:
            return GateResult(cols, rejected=[Rejected(["empty batch"])], message=data)
        verdict = self.trust.key(self.region, cols.node_id, cols.key_id, now_ms)
        key, scope = verdict.public_key, verdict.scope
        if key is None or scope is None:
            reason = verdict.reason or f"key {cols.key_id} of node {cols.node_id} is not trusted"
            rejected = [Rejected([reason], i, cols.op(i)) for i in range(n)]
            return GateResult(cols, rejected=rejected, untrusted_key=True)
        try:
            verify_batch(cols.op_digests, cols.signature, key)
        except SignatureError as e:
            return GateResult(
                cols, rejected=[Rejected([f"bad signature: {e}"], i, cols.op(i)) for i in range(n)]
            )
        seen_key = None
        if self.seen is not None:
            seen_key = batch_key(cols.op_digests)
            prior = self.seen.duplicate_of(seen_key, Acceptance(self.region, partition, offset), now_ms)
            if prior is not None:
                reason = f"duplicate of batch {cols.batch_id} accepted at {prior} (same signed operations)"
                return GateResult(cols, rejected=[Rejected([reason], i, cols.op(i)) for i in range(n)])
        result = GateResult(cols, message=data)
        # Checks that hold for a whole batch are made once; an operation is examined on its own only
        # in a batch that fails one of them (or for an object no pipeline knows).
        signed = cols.op_digests
        altered = (
            set()
            if hashed == signed
            else {i for i in range(n) if hashed[i * 32 : (i + 1) * 32] != signed[i * 32 : (i + 1) * 32]}
        )
        odd_args = set(noncanonical)
        denied = set(scope.denied(cols.object_ids))  # outside the grant: none for `*` without auth: ids
        suspect = bool(
            altered
            or odd_args
            or denied
            or set(cols.node_ids) != {cols.node_id}
            or max(map(len, set(cols.object_ids))) > SURELY_SHORT_OBJECT_ID_CHARS
            or not self._in_window(min(cols.hlcs), max(cols.hlcs), now_ms)
        )
        rule_for = self.pipelines.rule_for
        efs = cols.encrypted_fields
        by_content: dict[tuple[str, ...], tuple[list[str], float]] = {}  # verdicts of this batch
        accepted, confidences = result.accepted, result.confidences
        columns = zip(cols.object_ids, cols.crdt_types, cols.kinds, cols.args_json, strict=True)
        for i, (object_id, crdt_type, kind, args_json) in enumerate(columns):
            rule = rule_for(object_id)
            reasons = (
                self._check_op(i, cols, rule, now_ms, i in altered, i in odd_args)
                if suspect or rule is None
                else []
            )
            if denied and i in denied:
                reasons.insert(0, scope.denial(cols.node_id, object_id))
            confidence = 1.0
            if not reasons and rule is not None:
                content_only, per_op = self._verifiers_for(rule)
                if content_only:
                    content = (rule.prefix, crdt_type, kind, args_json, *(efs[i] if efs else ()))
                    verdict = by_content.get(content)
                    if verdict is None:
                        verdict = by_content[content] = _verdict(content_only, cols.op(i), rule)
                    reasons, confidence = list(verdict[0]), verdict[1]
                if per_op:
                    more, c = _verdict(per_op, cols.op(i), rule)
                    reasons += more
                    confidence = min(confidence, c)
            if reasons:
                result.rejected.append(Rejected(reasons, i, cols.op(i)))
            else:
                accepted.append(i)
                confidences.append(confidence)
        if seen_key is not None and accepted and self.seen is not None:
            result.seen_key = seen_key
            result.seen_expires_ms = (max(cols.hlcs) >> 16) + self.widest_window_ms
            self.seen.record(seen_key, Acceptance(self.region, partition, offset), result.seen_expires_ms)
            self.seen.expire(now_ms)
        return result

    def _verifiers_for(self, rule: PrefixRule) -> tuple[list[OpVerifier], list[OpVerifier]]:
        """The verifiers whose verdict under `rule` depends only on an operation's content, and the
        others (run for every operation)."""
        split = self._split.get(rule.prefix)
        if split is None:
            content_only: list[OpVerifier] = []
            per_op: list[OpVerifier] = []
            for v in self.verifiers:
                decides_by_content = getattr(v, "content_only", None)
                (content_only if decides_by_content and decides_by_content(rule) else per_op).append(v)
            split = self._split[rule.prefix] = (content_only, per_op)
        return split

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
        cols: BatchColumns,
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
        too_long = object_id_too_long(cols.object_ids[i])
        if too_long:
            reasons.append(too_long)
        if cols.node_ids[i] != cols.node_id:
            reasons.append(f"op node {cols.node_ids[i]!r} differs from the batch signer {cols.node_id!r}")
        if rule is None:
            prefix = cols.object_ids[i].partition(":")[0]
            reasons.append(f"unknown object prefix {prefix!r} (no pipeline defines it)")
            window_s, future_s = UNKNOWN_PREFIX_WINDOW
        else:
            window_s, future_s = rule.replay_window_s, rule.max_future_s
        why = check_window(cols.hlcs[i], now_ms, max_age_s=window_s, max_future_s=future_s)
        if why:
            reasons.append(why)
        return reasons


def _verdict(verifiers: Sequence[OpVerifier], op: Operation, rule: PrefixRule) -> tuple[list[str], float]:
    """Every verifier's reasons to reject the operation, and the lowest confidence."""
    reasons: list[str] = []
    confidence = 1.0
    for v in verifiers:
        r, c = v.check(op, rule)
        reasons += r
        confidence = min(confidence, c)
    return reasons, confidence
