"""The steps of `jarvis trace` (jarvis/trace.py) and the changelog it reads (connectors/trace.py)."""

from __future__ import annotations

import faust

from connectors.trace import fold_changelog
from jarvis.ops import Dot
from jarvis.trace import Step, Trace, context_covers


def test_a_context_covers_the_dots_at_or_before_its_last_one_of_that_origin() -> None:
    ctx = {"eu/3": [120, 4]}
    assert context_covers(ctx, Dot("eu", 3, 120, 4))
    assert context_covers(ctx, Dot("eu", 3, 119, 9))
    assert not context_covers(ctx, Dot("eu", 3, 120, 5))
    assert not context_covers(ctx, Dot("eu", 2, 1, 0))
    assert not context_covers(ctx, Dot("us", 3, 1, 0))
    assert not context_covers(None, Dot("eu", 3, 1, 0))


def test_steps_are_told_in_time_order_written_first_and_the_gaps_sum_to_the_total() -> None:
    t = Trace("op-1", "ctr:a", "eu")
    t.add(Step("folded", "us", 1_150), "folded in us")
    t.add(Step("written", "eu", 1_000), "written")
    t.add(None, "archived")
    t.add(Step("verified", "eu", 1_010), "verified")
    t.add(Step("folded", "eu", 1_030), "folded in eu")
    d = t.to_dict()
    assert [(s["step"], s["region"]) for s in d["steps"]] == [
        ("written", "eu"), ("verified", "eu"), ("folded", "eu"), ("folded", "us"),
    ]  # fmt: skip
    assert [s["since_previous_ms"] for s in d["steps"]] == [0, 10, 20, 120]
    assert d["total_ms"] == 150 == sum(s["since_previous_ms"] for s in d["steps"])
    assert d["missing"] == ["archived"]
    # A host whose clock runs behind must not put a later step before the write.
    skewed = Trace("op-2", "ctr:a", "eu", [Step("written", "eu", 2_000), Step("folded", "us", 1_990)])
    assert [s.name for s in skewed.ordered()] == ["written", "folded"]


def test_the_changelog_name_is_fausts_for_the_folds_objects_table() -> None:
    app = faust.App("jarvis-fold-eu", broker="kafka://127.0.0.1:1")
    table = app.Table("objects", partitions=6, key_type=bytes, value_type=bytes)
    assert table.changelog_topic.get_topic_name() == fold_changelog("eu")


def test_a_trace_starts_where_the_id_says_it_was_written_else_an_hour_back() -> None:
    from jarvis.trace import LOOKBACK_MS, start_ms

    assert start_ms(1_700_000_000_000, 1_800_000_000_000) == 1_700_000_000_000
    assert start_ms(None, 1_800_000_000_000) == 1_800_000_000_000 - LOOKBACK_MS
