"""Task routing and retry rules, and the task record's Avro round trip."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.tasks import (
    TERMINAL,
    Task,
    TaskError,
    choose_pool,
    decode_task,
    encode_task,
    pool_name,
    pool_topic,
    retry_delay_ms,
)
from pipelines.loader import pipelines

CAPS = st.frozensets(st.sampled_from(["a", "b", "c", "gpu", "noop"]), min_size=1, max_size=4)


@given(
    needs=st.sets(st.sampled_from(["a", "b", "c", "gpu", "noop"]), max_size=3),
    pools=st.sets(CAPS, max_size=5),
)
def test_a_task_is_routed_only_to_a_pool_with_every_capability_it_needs(needs, pools) -> None:
    names = {pool_name(p) for p in pools}
    chosen = choose_pool("t-1", sorted(needs), names)
    capable = [p for p in pools if needs <= p]
    if not capable:
        assert chosen is None
    else:
        assert chosen is not None and needs <= set(chosen.split("+"))
        assert chosen == choose_pool("t-1", sorted(needs), set(names))  # deterministic


def test_load_spreads_across_equally_able_pools() -> None:
    pools = {"a+noop", "b+noop"}
    picks = Counter(choose_pool(f"task-{i}", ["noop"], pools) for i in range(2000))
    assert set(picks) == pools and min(picks.values()) > 800
    assert all(choose_pool(f"t{i}", ["a"], pools) == "a+noop" for i in range(50))


def test_pool_names_are_canonical_and_valid_topic_names() -> None:
    assert pool_name(["noop", "a", "a"]) == "a+noop"
    assert pool_topic("a+noop") == "jarvis.tasks.pool.a.noop"
    with pytest.raises(TaskError, match="at least one"):
        pool_name([])
    with pytest.raises(TaskError, match="lower-case"):
        pool_name(["GPU!"])


def test_backoff_doubles_per_attempt_and_is_capped() -> None:
    t = Task("x", "noop", ["noop"], backoff_ms=100)
    assert [retry_delay_ms(Task("x", "noop", ["noop"], attempt=a, backoff_ms=100)) for a in range(4)] == [
        100,
        200,
        400,
        800,
    ]
    assert retry_delay_ms(Task("x", "noop", ["noop"], attempt=30, backoff_ms=100)) == 60_000
    nxt = t.next_attempt(1_000)
    assert nxt.attempt == 1 and nxt.not_before_ms == 1_100 and t.attempt == 0


def test_task_round_trips_through_avro_and_knows_its_deadline() -> None:
    t = Task("t-9", "summarise", ["telemetry"], {"object_id": "lab:1", "n": [1, 2]}, priority=5,
             deadline_ms=2_000, attempt=1, max_attempts=4, submitted_hlc=123, not_before_ms=1_500, region="us")  # fmt: skip
    back = decode_task(encode_task(t))
    assert back == t and back.object_id == "task:t-9"
    assert t.expired(2_001) and not t.expired(1_999)


def test_final_states_are_states_of_the_task_workflow() -> None:
    rule = pipelines().rule_for("task:t-1")
    assert rule is not None and rule.workflow is not None
    assert set(rule.workflow.states) >= TERMINAL
    assert rule.workflow.initial not in TERMINAL
    # succeeded and dead end a task: nothing leads out of them.
    assert not rule.workflow.transitions.get("succeeded") and not rule.workflow.transitions.get("dead")
