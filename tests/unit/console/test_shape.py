"""The console's pure reshaping: per-region counter contributions, register winners, workflow
contests, rejected-record filters and export, tasks by state."""

from __future__ import annotations

import csv
import io

from connectors.console import shape
from connectors.console.shape import RejectedFilter


def op(kind: str, region: str, hlc: int, node: str = "n1", problem: str | None = None, **args) -> dict:
    return {"kind": kind, "region": region, "hlc": hlc, "node_id": node, "args": args, "problem": problem,
            "time": f"t{hlc}"}  # fmt: skip


def test_counter_contributions_net_each_region_and_skip_bad_signatures() -> None:
    hist = [op("increment", "eu", 1, n=5), op("decrement", "eu", 2, n=2), op("increment", "us", 3, n=7),
            op("increment", "us", 4, n=100, problem="bad signature")]  # fmt: skip
    assert shape.counter_contributions(hist) == {"eu": 3, "us": 7}


def test_register_latest_wins_by_hlc_then_node() -> None:
    hist = [op("write", "eu", 10, "a", value="old"), op("write", "us", 20, "b", value="new"),
            op("write", "eu", 20, "a", value="tie-loser")]  # fmt: skip
    d = shape.register_detail(hist, None)
    assert d is not None
    assert (d["value"], d["writer"], d["region"], d["hlc"], d["writes"]) == ("new", "b", "us", "20", 3)
    assert "latest" in d["why"]


def test_register_category_outranks_a_later_write_and_says_why() -> None:
    hist = [op("write", "eu", 10, "a", value="lock", category="security"),
            op("write", "us", 50, "b", value="fast", category="performance")]  # fmt: skip
    d = shape.register_detail(hist, "category")
    assert d is not None
    assert d["value"] == {"category": "security", "value": "lock"} and d["writer"] == "a"
    assert "'security' outranks 1" in d["why"]
    assert shape.register_detail([], "category") is None


def test_workflow_contests_group_the_losers_with_the_transition_they_lost_to() -> None:
    def t(frm: str, to: str, ts: int, node: str, applied: bool) -> dict:
        return {"from": frm, "to": to, "timestamp": ts, "node": node, "args": {}, "applied": applied}

    hist = [t("draft", "submitted", 1, "a", True), t("submitted", "approved", 2, "a", True),
            t("approved", "rejected", 3, "b", False), t("approved", "draft", 4, "c", False)]  # fmt: skip
    steps = shape.workflow_timeline(hist)
    assert [(s.contest, s.rivals, s.applied) for s in steps] == [
        (0, 1, True), (1, 3, True), (1, 3, False), (1, 3, False)
    ]
    assert shape.workflow_timeline([]) == []


def rej(**kw) -> dict:
    row = {"rejected_at": "2026-01-01T00:00:00.000+00:00", "rejected_at_ms": 1000, "region": "eu",
           "reasons": ["bad signature"], "object_id": "ctr:x", "op_id": "o1", "node_id": "n1", "kind": "increment",
           "topic": "jarvis.ops.ingress", "partition": 0, "offset": 7, "index": None, "decoded": {"a": "<b>"}}  # fmt: skip
    row.update(kw)
    return row


def test_rejected_filter_by_reason_node_prefix_and_time() -> None:
    r = rej()
    assert RejectedFilter().matches(r)
    assert RejectedFilter(reason="SIGNATURE").matches(r) and not RejectedFilter(reason="too old").matches(r)
    assert RejectedFilter(node="n1").matches(r) and not RejectedFilter(node="n2").matches(r)
    assert RejectedFilter(prefix="ctr:").matches(r) and not RejectedFilter(prefix="reg:").matches(r)
    assert not RejectedFilter(prefix="ctr:").matches(rej(object_id=None))
    assert RejectedFilter(since_ms=1000, until_ms=1000).matches(r)
    assert not RejectedFilter(since_ms=1001).matches(r) and not RejectedFilter(until_ms=999).matches(r)


def test_rejected_csv_has_one_row_per_record_with_every_reason() -> None:
    text = shape.rejected_csv([rej(reasons=["a, b", "c"], index=2), rej(object_id=None)])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(shape.REJECTED_COLUMNS)
    assert len(rows) == 3
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["reasons"] == "a, b | c" and first["index"] == "2" and first["decoded"] == '{"a": "<b>"}'
    assert dict(zip(rows[0], rows[2], strict=True))["object_id"] == ""


def test_tasks_by_state_counts_attempts_and_keeps_the_last_error() -> None:
    def v(tid: str, state: str, hist: list[tuple[str, dict]]) -> dict:
        return {"object_id": f"task:{tid}", "value": {"state": state, "history": [
            {"to": to, "args": a, "applied": True} for to, a in hist]}}  # fmt: skip

    views = [
        v("t1", "dead", [("submitted", {"capabilities": ["llm"]}), ("claimed", {}), ("failed", {"error": "x"}),
                         ("retried", {}), ("claimed", {}), ("failed", {"error": "boom"}), ("dead", {})]),
        v("t2", "succeeded", [("submitted", {"handler": "noop"}), ("claimed", {}), ("succeeded", {})]),
    ]  # fmt: skip
    got = shape.tasks_by_state(views)
    assert list(got) == ["dead", "succeeded"]
    assert got["dead"][0] | {} == {"task_id": "t1", "state": "dead", "pool": "llm", "attempts": 2, "retries": 1,
                                   "last_error": "boom"}  # fmt: skip
    assert got["succeeded"][0]["pool"] == "noop"
