"""The pure part of a region's join (jarvis/regions_join.py): where MirrorMaker's flows start, the
offset-store records that make them start there, and the archive folded into states."""

from __future__ import annotations

import json

import pytest

from jarvis.materialize import ObjectState
from jarvis.ops import Dot, Operation
from jarvis.partitioning import murmur2
from jarvis.regions_join import (
    JoinError,
    by_object,
    check_backup,
    covered,
    fold_archived,
    join_record,
    mm2_offset_key,
    mm2_offset_records,
    parse_join_record,
    start_offsets,
)
from jarvis.replay import SourcedOp
from pipelines.loader import object_factory, pipelines


def positions(**archivers: dict[str, int]) -> dict:
    return {
        region: {
            "bootstrap": "x",
            "groups": {
                f"jarvis-archiver-{region}": {"jarvis.ops": offs, "us.jarvis.ops": {"0": 999}},
                f"jarvis-fold-{region}": {"jarvis.ops": {"0": 12345}},
            },
        }
        for region, offs in archivers.items()
    }


def test_starts_are_each_sources_archiver_on_its_own_log() -> None:
    pos = positions(eu={"0": 10, "2": 7}, us={"1": 3})
    starts = start_offsets(pos, "ap", ["eu", "us"], partitions=3)
    # Not the fold's offsets, not the archiver's on a mirror: the archive holds what lies below these.
    assert starts == {"eu": {0: 10, 1: 0, 2: 7}, "us": {0: 0, 1: 3, 2: 0}}


def test_a_source_without_positions_is_an_error_naming_it() -> None:
    pos = positions(eu={"0": 1})
    pos["us"] = {"error": "127.0.0.1:19102: timed out"}
    with pytest.raises(JoinError, match="no Kafka positions for region 'us' .*timed out"):
        start_offsets(pos, "ap", ["eu", "us"], partitions=6)
    with pytest.raises(JoinError, match="'us' \\(not in the backup\\)"):
        start_offsets(positions(eu={}), "ap", ["eu", "us"], partitions=6)


def test_a_region_the_backup_knows_is_not_new() -> None:
    with pytest.raises(JoinError, match="already records region 'ap'"):
        start_offsets(positions(eu={}, ap={"0": 1}), "ap", ["eu"], partitions=6)


def test_positions_outside_the_partitions_are_refused() -> None:
    with pytest.raises(JoinError, match="partition 7, outside the 6 partitions"):
        start_offsets(positions(eu={"7": 1}), "ap", ["eu"], partitions=6)


def test_only_backups_with_positions_read_before_the_snapshot() -> None:
    check_backup({"version": "v", "positions_before_snapshot": True}, {"eu": {}})
    with pytest.raises(JoinError, match="records no Kafka positions"):
        check_backup({"version": "v", "positions_before_snapshot": True}, None)
    with pytest.raises(JoinError, match="after the archive snapshot"):
        check_backup({"version": "v"}, {"eu": {}})


def test_offset_store_records_are_connects_bytes_on_the_partitioners_partition() -> None:
    # As Kafka Connect's JsonConverter writes MirrorMaker's source offsets (seen in mm2-offsets topics).
    assert mm2_offset_key("eu", "jarvis.ops", 3) == b'["MirrorSourceConnector",{"cluster":"eu","partition":3,"topic":"jarvis.ops"}]'
    records = mm2_offset_records("eu", {0: 0, 1: 5, 2: 1})
    assert [(json.loads(k)[1]["partition"], json.loads(v)) for _, k, v in records] == [
        (1, {"offset": 4}),  # MirrorMaker resumes one past the offset stored: at 5
        (2, {"offset": 0}),
    ]  # partition 0 starts at 0: no record, a new flow starts at the beginning anyway
    for part, key, _ in records:
        assert part == (murmur2(key) & 0x7FFFFFFF) % 25


def test_join_records_round_trip() -> None:
    key, value = join_record("ap", "eu", "v1", {0: 4, 5: 9})
    assert key == b"eu"
    assert parse_join_record(value) == ("eu", {0: 4, 5: 9})


def sourced(oid: str, kind: str, args: dict, hlc: int, dot: Dot, t: str = "pncounter") -> SourcedOp:
    op = Operation(f"op-{dot}", oid, t, kind, args, "n1", dot.origin_region, hlc, {}, [])
    return SourcedOp(op, dot, "b", "", dot.index, b"", b"")


def test_the_archive_folds_each_dot_once_into_states_with_their_context() -> None:
    rows = [
        sourced("ctr:a", "increment", {"n": 5}, 10, Dot("eu", 0, 4, 0)),
        sourced("ctr:a", "increment", {"n": 5}, 10, Dot("eu", 0, 4, 0)),  # archived twice (two topics)
        sourced("ctr:a", "decrement", {"n": 2}, 12, Dot("us", 0, 9, 1)),
        sourced("ctr:b", "increment", {"n": 1}, 11, Dot("eu", 1, 2, 0)),
    ]
    folded = fold_archived(rows, object_factory(pipelines()))
    states = {st.object_id: st for st in folded.states}
    assert set(states) == {"ctr:a", "ctr:b"}
    a = states["ctr:a"]
    assert isinstance(a, ObjectState) and a.value.value() == 3 and a.ops == 2
    assert a.context == {"eu/0": [4, 0], "us/0": [9, 1]}
    assert folded.ops == 4 and folded.folded == 3
    assert folded.newest_dot == {("eu", 0): (4, 0), ("us", 0): (9, 1), ("eu", 1): (2, 0)}
    assert covered(folded.newest_dot, Dot("eu", 0, 3, 7)) and covered(folded.newest_dot, Dot("eu", 0, 4, 0))
    assert not covered(folded.newest_dot, Dot("eu", 0, 4, 1)) and not covered(folded.newest_dot, Dot("ap", 0, 0, 0))


def test_rows_group_by_object_in_order() -> None:
    rows = [sourced(f"ctr:{o}", "increment", {"n": 1}, i, Dot("eu", 0, i, 0)) for i, o in enumerate("aabba")]
    assert [(oid, len(ops)) for oid, ops in by_object(rows)] == [("ctr:a", 2), ("ctr:b", 2), ("ctr:a", 1)]
