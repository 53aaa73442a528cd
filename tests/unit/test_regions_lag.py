"""The arithmetic of `jarvis regions status`'s mirror lag (connectors/regions.py records_behind): the
records of each source partition a mirror does not hold yet, from the end offsets alone."""

from __future__ import annotations

from connectors.regions import records_behind


def test_a_mirror_caught_up_trails_by_nothing() -> None:
    assert records_behind({0: 10, 1: 0, 2: 7}, {0: 10, 1: 0, 2: 7}, {}) == {}


def test_only_the_partitions_that_trail_with_how_many_records() -> None:
    assert records_behind({0: 10, 1: 5, 2: 7}, {0: 4, 1: 5, 2: 0}, {}) == {0: 6, 2: 7}


def test_a_mirror_ahead_of_its_source_trails_by_nothing() -> None:
    # MirrorMaker re-sends after a crash: the mirror holds duplicates, not a negative lag.
    assert records_behind({0: 10}, {0: 12}, {}) == {}


def test_a_missing_mirror_partition_trails_by_the_whole_source() -> None:
    assert records_behind({0: 10, 1: 3}, {0: 10}, {}) == {1: 3}
    assert records_behind({0: 10, 1: 3}, {}, {}) == {0: 10, 1: 3}


def test_a_mirror_started_by_a_join_counts_from_the_backups_positions() -> None:
    # The region joined with source offsets 100 and 40 already in its backup: its mirror began there.
    assert records_behind({0: 105, 1: 40}, {0: 5, 1: 0}, {0: 100, 1: 40}) == {}
    assert records_behind({0: 110, 1: 45}, {0: 5, 1: 0}, {0: 100, 1: 40}) == {0: 5, 1: 5}
