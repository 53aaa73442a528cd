"""`POST /v1/ops?wait=S`: the verdicts of the operations a request wrote, within S seconds.

The writer gives each operation its ingress (partition, offset); operations sharing a position are
one ingress message, in request order (connectors/ingest/writer.py groups them so). Each message
becomes a `SentBatch` for `connectors.verdicts.await_verdicts`, whose `judged` indexes are the
bounded-counter decrements and transfers: their verdict is the origin fold's decision, not the
verifier's acceptance (as the SDK's `_judge` marks them).

On a timeout, `await_verdicts`' VerdictTimeout carries what it did read: the final verdicts
(`found`), and the judged operations the verifier accepted whose fold had not decided (`verified`).
The answer is made from those: the ones found are answered, the others `pending` with the reason
(the verifier's word missing, or only the fold's), without reading Kafka a second time.
Pure but for `gather`, which runs the Kafka reads in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from jarvis.crdt.bcounter_spec import JUDGED
from jarvis.verdicts import SentBatch, Verdict, VerdictTimeout

MAX_WAIT_S = 30.0


def parse_wait(raw: str | None) -> float | None:
    """The `wait` query parameter in seconds (None: not asked); ValueError with the reason if bad."""
    if raw is None:
        return None
    try:
        s = float(raw)
    except ValueError:
        raise ValueError(f"wait={raw[:40]!r}: give a number of seconds, 0 < wait <= {MAX_WAIT_S:g}") from None
    if not 0 < s <= MAX_WAIT_S:  # NaN fails this too
        raise ValueError(f"wait={raw[:40]!r}: give a number of seconds, 0 < wait <= {MAX_WAIT_S:g}")
    return s


class OpLike(Protocol):
    """An Operation, or the fast path's Row (connectors/ingest/writer.py): what placing needs."""

    @property
    def op_id(self) -> str: ...
    @property
    def object_id(self) -> str: ...
    @property
    def crdt_type(self) -> str: ...
    @property
    def kind(self) -> str: ...


def is_judged(op: OpLike) -> bool:
    return op.crdt_type == "bcounter" and op.kind in JUDGED


@dataclass(slots=True)
class Placed:
    """The request's operations as ingress messages: `batches`, and per request index its
    (batch key, index in that batch)."""

    batches: list[SentBatch]
    where: list[tuple[tuple[int, int], int]]


def place(ops: Sequence[OpLike], positions: Sequence[tuple[int, int]], sent_ms: int) -> Placed:
    """One SentBatch per ingress message, its operations in message order (= request order)."""
    by_key: dict[tuple[int, int], SentBatch] = {}
    judged: dict[tuple[int, int], set[int]] = {}
    where: list[tuple[tuple[int, int], int]] = []
    for op, (p, off) in zip(ops, positions, strict=True):
        b = by_key.get((p, off))
        if b is None:
            b = by_key[(p, off)] = SentBatch(p, [], [], off, sent_ms)
            judged[(p, off)] = set()
        if is_judged(op):
            judged[(p, off)].add(len(b.op_ids))
        where.append(((p, off), len(b.op_ids)))
        b.op_ids.append(op.op_id)
        b.object_ids.append(op.object_id)
    for key, b in by_key.items():
        b.judged = frozenset(judged[key])
    return Placed(list(by_key.values()), where)


Await = Callable[[list[SentBatch], float], dict[str, Verdict]]


def collect(placed: Placed, timeout: float, await_: Await) -> tuple[dict[str, Verdict], dict[str, str]]:
    """The verdicts found (by op id) and, for the others, why they are pending. Blocking."""
    try:
        return await_(placed.batches, timeout), {}
    except VerdictTimeout as e:
        found, verified = e.found, e.verified
    pending: dict[str, str] = {}
    verdicts: dict[str, Verdict] = {}
    for b in placed.batches:
        for op in b.op_ids:
            v = found.get(op)
            if v is not None:
                verdicts[op] = v
            elif op in verified:
                pending[op] = f"accepted by the verifier; its origin fold has not decided within {timeout:g} s"
            else:
                pending[op] = f"no verdict within {timeout:g} s (is the verifier keeping up?)"
    return verdicts, pending


def result(index: int, op_id: str, verdict: Verdict | None, pending_reason: str | None) -> dict[str, Any]:
    """One operation's result under wait: accepted (with its dot), rejected with the reasons (the
    verifier's, or for a bounded-counter decrement or transfer its origin fold's refusal), or pending.
    Who rejected it is not said: a fold's refusal is also a record on jarvis.ops.rejected, and the
    first of the two read is the verdict, so a Verdict cannot tell them apart; the reasons do."""
    if verdict is None:
        return {"index": index, "status": "pending", "op_id": op_id,
                "reasons": [pending_reason or "no verdict yet"]}  # fmt: skip
    out: dict[str, Any] = {"index": index, "op_id": op_id}
    if verdict.ok:
        out["status"] = "accepted"
        out["dot"] = list(verdict.dot or ())
        if verdict.applied:
            out["decision"] = "applied"
    else:
        out["status"] = "rejected"
        out["reasons"] = list(verdict.reasons)
    return out


def results(
    placed: Placed, ops: Sequence[OpLike], verdicts: dict[str, Verdict], pending: dict[str, str]
) -> list[dict[str, Any]]:
    return [result(i, op.op_id, verdicts.get(op.op_id), pending.get(op.op_id)) for i, op in enumerate(ops)]


async def gather(
    placed: Placed, timeout: float, await_: Await, executor: Executor | None = None
) -> tuple[dict[str, Verdict], dict[str, str]]:
    """`collect` off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, collect, placed, timeout, await_)
