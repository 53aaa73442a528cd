"""`POST /v1/ops?wait=S`, its pure parts: the wait parameter, ingress messages as SentBatches (which
operations the origin fold judges), the second look after a timeout, and each result's shape."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectors.ingest import waiting
from jarvis.ops import Operation
from jarvis.verdicts import SentBatch, Verdict, VerdictTimeout


def op(i: int, object_id: str, crdt_type: str, kind: str, args: dict[str, Any] | None = None) -> Operation:
    return Operation(f"g0.1.00000000{i:x}", object_id, crdt_type, kind, args or {"n": 1}, "ingest-eu-0", "eu", 1 << 16)


OPS = [
    op(0, "ctr:a", "pncounter", "increment"),
    op(1, "bc:s", "bcounter", "decrement"),
    op(2, "bc:s", "bcounter", "increment"),
    op(3, "bc:t", "bcounter", "transfer", {"n": 1, "to_region": "us"}),
]
POSITIONS = [(2, 10), (5, 7), (5, 7), (2, 11)]


def test_wait_is_a_bounded_number_of_seconds() -> None:
    assert waiting.parse_wait(None) is None
    assert waiting.parse_wait("5") == 5.0 and waiting.parse_wait("0.5") == 0.5 and waiting.parse_wait("30") == 30.0
    for bad in ("0", "-1", "30.5", "31", "nan", "inf", "", "abc", "5s"):
        with pytest.raises(ValueError, match=r"0 < wait <= 30"):
            waiting.parse_wait(bad)


def test_messages_keep_request_order_and_judge_only_bcounter_decrements_and_transfers() -> None:
    placed = waiting.place(OPS, POSITIONS, 1234)
    by = {(b.partition, b.offset): b for b in placed.batches}
    assert set(by) == {(2, 10), (5, 7), (2, 11)}
    assert by[(5, 7)].op_ids == [OPS[1].op_id, OPS[2].op_id] and by[(5, 7)].judged == frozenset({0})
    assert by[(2, 10)].judged == frozenset() and by[(2, 11)].judged == frozenset({0})
    assert all(b.sent_ms == 1234 for b in placed.batches)
    assert placed.where == [((2, 10), 0), ((5, 7), 0), ((5, 7), 1), ((2, 11), 0)]


def _v(o: Operation, batch: tuple[int, int], i: int, ok: bool = True, **kw: Any) -> Verdict:
    return Verdict(o.op_id, o.object_id, ok, dot=("eu", batch[0], batch[1], i), **kw)


def test_verdicts_found_in_time_are_the_answer() -> None:
    placed = waiting.place(OPS, POSITIONS, 0)
    calls: list[tuple[list[SentBatch], float]] = []
    answer = {
        OPS[0].op_id: _v(OPS[0], (2, 10), 0),
        OPS[1].op_id: _v(OPS[1], (5, 7), 0, reasons=["insufficient rights in eu: holds 3, needs 5"], applied=False),
        OPS[2].op_id: _v(OPS[2], (5, 7), 1),
        OPS[3].op_id: Verdict(OPS[3].op_id, OPS[3].object_id, False, ["transfer of 1 exceeds the 0 rights eu holds"]),
    }

    def await_(batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        calls.append((batches, timeout))
        return answer

    verdicts, pending = asyncio.run(waiting.gather(placed, 5.0, await_))
    assert pending == {} and len(calls) == 1 and calls[0][1] == 5.0
    rs = waiting.results(placed, OPS, verdicts, pending)
    assert rs[0] == {"index": 0, "op_id": OPS[0].op_id, "status": "accepted", "dot": ["eu", 2, 10, 0]}
    assert rs[1]["status"] == "rejected"
    assert rs[1]["reasons"] == ["insufficient rights in eu: holds 3, needs 5"]
    assert rs[2]["status"] == "accepted"
    assert rs[3] == {"index": 3, "op_id": OPS[3].op_id, "status": "rejected",
                     "reasons": ["transfer of 1 exceeds the 0 rights eu holds"]}  # fmt: skip


def test_an_applied_decrement_says_so() -> None:
    v = _v(OPS[1], (5, 7), 0, applied=True)
    assert waiting.result(1, OPS[1].op_id, v, None) == {
        "index": 1, "op_id": OPS[1].op_id, "status": "accepted", "dot": ["eu", 5, 7, 0], "decision": "applied",
    }  # fmt: skip


def test_a_fold_that_has_not_decided_leaves_only_its_operations_pending() -> None:
    placed = waiting.place(OPS, POSITIONS, 0)
    calls: list[list[SentBatch]] = []

    def await_(batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        calls.append(batches)
        # The fold's word on the decrement missing; the verifier accepted it; the rest is final.
        raise VerdictTimeout(
            "no verdict",
            [OPS[1].op_id],
            {
                OPS[0].op_id: _v(OPS[0], (2, 10), 0),
                OPS[2].op_id: _v(OPS[2], (5, 7), 1),
                OPS[3].op_id: _v(OPS[3], (2, 11), 0, applied=True),
            },
            {OPS[1].op_id: _v(OPS[1], (5, 7), 0)},
        )

    verdicts, pending = waiting.collect(placed, 5.0, await_)
    assert len(calls) == 1  # answered from what the timeout carried: no second read
    assert list(pending) == [OPS[1].op_id] and "origin fold has not decided within 5 s" in pending[OPS[1].op_id]
    rs = waiting.results(placed, OPS, verdicts, pending)
    assert [r["status"] for r in rs] == ["accepted", "pending", "accepted", "accepted"]
    assert rs[1]["op_id"] == OPS[1].op_id and rs[3]["decision"] == "applied"


def test_a_timeout_keeps_a_rejection_it_read_and_a_missing_verifier_word_is_pending() -> None:
    placed = waiting.place(OPS, POSITIONS, 0)
    refused = Verdict(OPS[3].op_id, OPS[3].object_id, False, ["transfer of 1 exceeds the 0 rights eu holds"])
    calls = 0

    def await_(batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        nonlocal calls
        calls += 1
        raise VerdictTimeout("no verdict", [OPS[1].op_id, OPS[2].op_id], {OPS[0].op_id: _v(OPS[0], (2, 10), 0),
                             OPS[3].op_id: refused})  # fmt: skip

    verdicts, pending = waiting.collect(placed, 3.0, await_)
    assert calls == 1
    assert set(verdicts) == {OPS[0].op_id, OPS[3].op_id} and set(pending) == {OPS[1].op_id, OPS[2].op_id}
    assert all("no verdict within 3 s" in why for why in pending.values())
    rs = waiting.results(placed, OPS, verdicts, pending)
    assert [r["status"] for r in rs] == ["accepted", "pending", "pending", "rejected"]
    assert rs[3]["reasons"] == ["transfer of 1 exceeds the 0 rights eu holds"]


def test_no_verifier_word_at_all_is_pending_with_a_reason() -> None:
    placed = waiting.place(OPS, POSITIONS, 0)

    def await_(batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        raise VerdictTimeout("no verdict", [o.op_id for o in OPS])

    verdicts, pending = waiting.collect(placed, 2.0, await_)
    assert verdicts == {} and set(pending) == {o.op_id for o in OPS}
    rs = waiting.results(placed, OPS, verdicts, pending)
    assert all(r["status"] == "pending" and "no verdict within 2 s" in r["reasons"][0] for r in rs)


def test_get_says_folded_in_the_regions_whose_changelog_covers_the_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import KafkaException

    from connectors.ingest import status
    from jarvis.config import Settings
    from jarvis.ops import Dot
    from jarvis.trace import Step

    asked: list[tuple[str, str, Dot, int]] = []

    class Tracer:
        def __init__(self, settings: Settings, principal: str) -> None:
            assert principal == "ingest"

        def folded(self, region: str, object_id: str, dot: Dot, since_ms: int) -> Step | None:
            asked.append((region, object_id, dot, since_ms))
            if region == "us":
                raise KafkaException("us unreachable")
            return Step("folded", region, since_ms + 40) if region == "eu" else None

    monkeypatch.setattr(status, "Tracer", Tracer)
    settings = Settings.from_env()
    s = status.OpStatus("127.0.0.1:1", "eu", settings)
    dot = Dot("eu", 3, 17, 0)
    folded, pending = s._folded("bc:x", dot, 1000)
    assert folded == ["eu"] and pending == [r for r in settings.region_names if r != "eu"]
    assert sorted(a[0] for a in asked) == sorted(settings.region_names) and all(a[1:] == ("bc:x", dot, 1000) for a in asked)
