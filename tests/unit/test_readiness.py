"""Per-partition readiness of a fold worker (streams/readiness.py), without Kafka: reads may be
answered only for partitions assigned here and recovered since their assignment."""

from __future__ import annotations

from streams.readiness import PartitionReadiness


def test_nothing_is_ready_before_the_first_assignment_and_its_recovery() -> None:
    r = PartitionReadiness()
    assert not r.all_ready and not r.can_answer(0)
    r.on_assigned({0, 1, 2}, generation=1)
    assert not r.all_ready and r.recovering == {0, 1, 2}
    assert not any(r.can_answer(p) for p in range(6))
    r.on_recovered(generation=1)
    assert r.all_ready and r.recovering == frozenset()
    assert [p for p in range(6) if r.can_answer(p)] == [0, 1, 2]


def test_a_worker_with_no_partitions_is_ready_once_its_empty_assignment_arrives() -> None:
    r = PartitionReadiness()
    r.on_assigned(set(), generation=1)
    assert r.all_ready and not r.can_answer(0)


def test_a_rebalance_keeps_retained_partitions_and_recovers_only_the_new_ones() -> None:
    r = PartitionReadiness()
    r.on_assigned(range(6), generation=1)
    r.on_recovered(generation=1)
    # A second worker joins: this one keeps 0-2, gives 3-5 away.
    r.on_assigned({0, 1, 2}, generation=2)
    assert r.all_ready and [p for p in range(6) if r.can_answer(p)] == [0, 1, 2]
    # The second worker leaves: 3-5 come back and must be recovered again (the table dropped them).
    r.on_assigned(range(6), generation=3)
    assert r.recovering == {3, 4, 5} and not r.all_ready
    assert r.can_answer(0) and not r.can_answer(4)
    assert r.report() == {"assigned": [0, 1, 2, 3, 4, 5], "recovering": [3, 4, 5], "assignment_known": True}
    r.on_recovered(generation=3)
    assert r.all_ready and r.can_answer(4)


def test_a_recovery_completed_for_an_earlier_rebalance_proves_nothing() -> None:
    r = PartitionReadiness()
    r.on_assigned({0}, generation=1)
    r.on_recovered(generation=1)
    r.on_assigned({0, 1}, generation=2)
    r.on_recovered(generation=1)  # late completion of the earlier recovery
    assert r.recovering == {1} and not r.can_answer(1)


def test_a_partition_given_away_and_taken_back_before_recovery_is_not_served_stale() -> None:
    r = PartitionReadiness()
    r.on_assigned({0, 1}, generation=1)
    r.on_recovered(generation=1)
    r.on_assigned({0}, generation=2)  # 1 goes elsewhere; recovery of generation 2 not finished
    r.on_assigned({0, 1}, generation=3)  # back before the table dropped (or refreshed) 1
    assert not r.can_answer(1) and r.can_answer(0)
