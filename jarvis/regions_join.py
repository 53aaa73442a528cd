"""A region that joins a running deployment from a backup: the pure part of the plan.

The joining region's state comes from a backup's archive, folded once (`fold_archived`); MirrorMaker
then copies into it only what the backup does not hold. Where each flow `S -> new` begins is read
from the backup's Kafka positions (`start_offsets`): the committed offsets of S's archiver on S's
own `jarvis.ops`, taken just before the archive's snapshot (connectors/backup/backup.py), so every
operation below them is in the archive. Operations above them that the snapshot happens to hold
too are copied again and skipped by their dots: a few duplicates, never a gap.

MirrorMaker 2 keeps, per flow, the last source offset it copied in the target cluster's
`mm2-offsets.<source>.internal` (Kafka Connect's offset store, compacted), under the key
`["MirrorSourceConnector",{"cluster":S,"partition":p,"topic":T}]` and the value `{"offset":o}`,
and resumes at o + 1. A new flow has no record there and starts at the beginning of the log; a
record written before the flow first starts makes it begin at the backup's position instead
(`mm2_offset_records`). The store looks keys up by their exact bytes, so the key is rendered as
Connect's JsonConverter renders that map (Java HashMap order: cluster, partition, topic; no spaces),
and it goes to the partition Kafka's default partitioner picks for it, where MirrorMaker's own
later records for that key land after it.

Pure: json and jarvis modules only (connectors/region_join.py does the I/O).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jarvis import topics
from jarvis.errors import JarvisError
from jarvis.materialize import ObjectState
from jarvis.ops import Dot
from jarvis.partitioning import murmur2
from jarvis.replay import SourcedOp, replay

MM2_CONNECTOR = "MirrorSourceConnector"  # dedicated-mode MirrorMaker's source connector's name
MM2_OFFSET_PARTITIONS = 25  # Kafka Connect's offset.storage.partitions default, which MirrorMaker keeps
# In the joining region: where each flow into it began (source -> partition -> source offset), so
# that lag counts what the backup brought (connectors/regions.py).
JOINS_TOPIC = "jarvis.regions.joins"


class JoinError(JarvisError, ValueError):
    """The region cannot join as asked; the message says why and what to do."""


def mm2_offsets_topic(source: str) -> str:
    """Where dedicated-mode MirrorMaker keeps the flow from `source`'s offsets, in the target cluster."""
    return f"mm2-offsets.{source}.internal"


def archiver_group(region: str) -> str:
    return f"jarvis-archiver-{region}"


def check_backup(manifest: Mapping[str, Any], positions: Mapping[str, Any] | None) -> None:
    """A backup a region can join from records Kafka positions, read before its archive snapshot."""
    if not positions:
        raise JoinError(
            f"backup {manifest.get('version')} records no Kafka positions (made with --no-kafka?): "
            "MirrorMaker would not know where to start; take a backup with them"
        )
    if not manifest.get("positions_before_snapshot"):
        raise JoinError(
            f"backup {manifest.get('version')} read its Kafka positions after the archive snapshot "
            "(an older jarvis): they may run ahead of the archive; take a new backup to join from"
        )


def start_offsets(
    positions: Mapping[str, Any], region: str, sources: Sequence[str], partitions: int
) -> dict[str, dict[int, int]]:
    """Per source region, per partition of its `jarvis.ops`, the first offset MirrorMaker copies
    into `region`: where the source's archiver stood when the backup was made (0 where it had
    committed nothing: that partition's log is copied whole)."""
    recorded = positions.get(region)
    if isinstance(recorded, Mapping) and recorded.get("groups"):
        raise JoinError(
            f"the backup already records region {region!r}'s Kafka groups: {region} is not new; "
            "a region joins once, with empty clusters"
        )
    out: dict[str, dict[int, int]] = {}
    for src in sources:
        info = positions.get(src)
        if not isinstance(info, Mapping) or "groups" not in info:
            why = info.get("error") if isinstance(info, Mapping) else "not in the backup"
            raise JoinError(f"the backup has no Kafka positions for region {src!r} ({why}): take a backup with {src} up")
        offsets = info["groups"].get(archiver_group(src), {}).get(topics.OPS, {})
        starts = dict.fromkeys(range(partitions), 0)
        for p, o in offsets.items():
            p, o = int(p), int(o)
            if not 0 <= p < partitions:
                raise JoinError(
                    f"the backup's positions name {src}'s {topics.OPS} partition {p}, outside the {partitions} "
                    "partitions configured (JARVIS_PARTITIONS must be the deployment's)"
                )
            if o < 0:
                raise JoinError(f"the backup's position of {src}'s {topics.OPS}[{p}] is negative ({o})")
            starts[p] = o
        out[src] = starts
    return out


def mm2_offset_key(source: str, topic: str, partition: int) -> bytes:
    """Connect's offset-store key for MirrorMaker's copy of source `topic`[`partition`]."""
    wrapped = {"cluster": source, "partition": partition, "topic": topic}  # Java HashMap's order
    return json.dumps([MM2_CONNECTOR, wrapped], separators=(",", ":")).encode()


def mm2_offset_records(
    source: str, starts: Mapping[int, int], topic: str = topics.OPS, store_partitions: int = MM2_OFFSET_PARTITIONS
) -> list[tuple[int, bytes, bytes]]:
    """(offset-store partition, key, value) making MirrorMaker's flow from `source` copy `topic`
    from `starts[p]` on. A start of 0 needs no record (a flow without one starts at the beginning)."""
    out = []
    for p, start in sorted(starts.items()):
        if start <= 0:
            continue
        key = mm2_offset_key(source, topic, p)
        value = json.dumps({"offset": start - 1}, separators=(",", ":")).encode()
        out.append(((murmur2(key) & 0x7FFFFFFF) % store_partitions, key, value))
    return out


def join_record(region: str, source: str, version: str, starts: Mapping[int, int]) -> tuple[bytes, bytes]:
    """(key, value) of the JOINS_TOPIC record: flow `source -> region` began at `starts`."""
    value = {"region": region, "source": source, "backup": version, "starts": {str(p): o for p, o in starts.items()}}
    return source.encode(), json.dumps(value, sort_keys=True).encode()


def parse_join_record(value: bytes) -> tuple[str, dict[int, int]]:
    """(source, partition -> start) of a JOINS_TOPIC record."""
    d = json.loads(value)
    return d["source"], {int(p): int(o) for p, o in d["starts"].items()}


def by_object(rows: Iterable[SourcedOp]) -> Iterator[tuple[str, list[SourcedOp]]]:
    """Consecutive rows of one object together (the archive is read ordered by object id)."""
    current: str | None = None
    batch: list[SourcedOp] = []
    for so in rows:
        oid = so.op.object_id
        if oid != current and batch:
            yield current, batch  # type: ignore[misc]
            batch = []
        current = oid
        batch.append(so)
    if batch:
        yield current, batch  # type: ignore[misc]


@dataclass
class Folded:
    """What folding a backup's archive gave: the objects' states and how many operations."""

    states: list[ObjectState] = field(default_factory=list)
    ops: int = 0  # archive rows read
    folded: int = 0  # operations in the states (each dot once)
    failed: int = 0  # operations the fold refused, as the live fold refuses them
    newest_dot: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # (origin, partition) -> dot


def fold_archived(
    rows: Iterable[SourcedOp],
    create: Callable[[str, str], ObjectState],
    progress: Callable[[int], None] | None = None,
) -> Folded:
    """Every object's state from its archived operations, each dot folded once (jarvis/replay.py:
    the same mutations the fold makes; afterwards each state's context is the highest dot per
    origin, as the live fold has it). Signatures are not checked again: the archive holds only
    operations a verifier accepted, and the backup is authenticated as a whole."""
    out = Folded()
    for oid, ops in by_object(rows):
        report = replay(
            oid, ops, source="backup", at_hlc=None, create=create, verify=_accepted, keep_history=False
        )
        out.ops += report.ops_total
        out.folded += report.ops_folded
        out.failed += len(report.failures)
        for so in ops:
            k = (so.dot.origin_region, so.dot.partition)
            d = (so.dot.offset, so.dot.index)
            if d > out.newest_dot.get(k, (-1, -1)):
                out.newest_dot[k] = d
        if report.state is not None:
            out.states.append(report.state)
        if progress is not None:
            progress(len(ops))
    return out


def _accepted(_: SourcedOp) -> str | None:
    return None


def covered(newest_dot: Mapping[tuple[str, int], tuple[int, int]], dot: Dot) -> bool:
    """Whether the backup's archive already held the operation with `dot` (its origin's ingress
    offsets are folded in order, so everything at or below the newest archived dot was there)."""
    top = newest_dot.get((dot.origin_region, dot.partition))
    return top is not None and (dot.offset, dot.index) <= top


@dataclass
class FlowCount:
    """One flow into the joined region after the join: what MirrorMaker copied of the source's log."""

    source: str
    start: int  # records of the source's jarvis.ops the backup stood for (sum of the start offsets)
    source_records: int  # the source's jarvis.ops, all partitions, at the count
    copied_records: int  # in <source>.jarvis.ops of the joined region
    copied_ops: int = 0
    already_in_backup: int = 0  # copied operations whose dot the backup's archive held

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "start": self.start, "source_records": self.source_records,
            "copied_records": self.copied_records, "copied_ops": self.copied_ops,
            "already_in_backup": self.already_in_backup,
        }  # fmt: skip
