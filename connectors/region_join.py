"""`jarvis regions join`: a new region joins the running ones from a backup of their archive.

The steps, in order (docs/operations.md, "A region that joins"):

1. the backup is restored into a scratch database (every chunk authenticated, the manifest checked:
   connectors/backup/backup.py), its Kafka positions give where each flow into the new region
   starts (jarvis/regions_join.py `start_offsets`), and its archive is folded into every object's
   state, causal context included; the scratch database is dropped;
2. MirrorMaker stops (its flows between the running regions resume later from their own offsets);
3. `Stack.up` with the new region in the list starts its broker, topics and ACLs, and before
   MirrorMaker starts again (`before_mirrors`) the join writes the states into the new region's
   fold changelog (the fold recovers its table from it, as after any restart), the flows' start
   offsets into MirrorMaker's offset stores, and where each flow began (JOINS_TOPIC); then
   MirrorMaker, with every flow of the new list, and the new region's workers start;
4. the running regions' workers, started with the old region list, are restarted with the new one
   (their folds and archivers then also read `<new>.jarvis.ops`).

Nothing of the backup is copied again by MirrorMaker except what lies between the archivers'
positions and the archive's snapshot (a few records, folded as duplicates by their dots).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.backup import backup
from connectors.backup.stores import Store
from connectors.kafka_clients import ADMIN, confluent_conf
from connectors.kafka_io import records_to_end
from connectors.regions import agreement, digests
from connectors.topics_admin import admin_client, ensure_topics
from jarvis import roles, topics
from jarvis.codec import CodecError, decode_verified_runs
from jarvis.config import Settings
from jarvis.ops import Dot, Operation
from jarvis.partitioning import partition_for
from jarvis.regions_join import (
    JOINS_TOPIC,
    MM2_OFFSET_PARTITIONS,
    FlowCount,
    Folded,
    JoinError,
    check_backup,
    covered,
    fold_archived,
    join_record,
    mm2_offset_records,
    mm2_offsets_topic,
    start_offsets,
)
from jarvis.replay import SourcedOp
from jarvis.stack.procs import process_env
from jarvis.stack.stack import Stack
from jarvis.stack.workers import wait_for_queries, worker_proc
from jarvis.topics import TopicSpec
from pipelines.loader import object_factory, pipelines

Report = Callable[[str], None]
Progress = Callable[[str, int], None]  # (what, units just done)


def _quiet(*_: Any) -> None:
    pass


@dataclass
class JoinResult:
    region: str
    version: str
    sources: list[str]
    starts: dict[str, dict[int, int]]
    backup_ops: int  # archive rows of the backup
    objects: int  # states written into the new region's fold changelog
    folded: int
    fold_failed: int
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    newest_dot: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.steps.values())


# -- the backup --------------------------------------------------------------------------------


def scratch_database(settings: Settings, region: str) -> tuple[str, Callable[[], None]]:
    """A new empty database on the stack's PostgreSQL for the backup's archive, and its dropper."""
    base, _db = settings.postgres_dsn.rsplit("/", 1)
    admin = f"{base}/postgres"
    name = f"jarvis_join_{region}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return f"{base}/{name}", drop


def archived_rows(conn: psycopg.Connection) -> Iterator[SourcedOp]:
    """Every archived operation, by object (the ops_object_ts index gives the order), streamed."""
    sql = (
        "SELECT op_id, object_id, crdt_type, kind, payload, node_id, op_region, hlc, metadata, "
        "encrypted_fields, origin_region, dot_partition, dot_offset, dot_index, batch_id, op_index "
        "FROM jarvis.ops ORDER BY object_id, ts"
    )
    with conn.cursor(name=f"join_{uuid.uuid4().hex}") as cur:
        cur.itersize = 20_000
        cur.execute(sql)
        for r in cur:
            op = Operation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], list(r[9]))
            yield SourcedOp(op, Dot(r[10], r[11], r[12], r[13]), r[14], "", r[15], b"", b"")


def read_backup(
    settings: Settings,
    region: str,
    store: Store,
    version: str,
    key: bytes,
    restore_dsn: str | None,
    progress: Progress = _quiet,
) -> tuple[dict[str, Any], Folded, dict[str, dict[int, int]]]:
    """Restore, plan and fold: (the restored backup's manifest, the folded archive, the starts)."""
    drop: Callable[[], None] | None = None
    if restore_dsn is None:
        restore_dsn, drop = scratch_database(settings, region)
    try:
        restored = backup.restore(
            store, version, key, restore_dsn, settings.keys_dir, progress=lambda w, n: progress("restore", n)
        )
        positions = restored.get("positions")
        check_backup(restored, positions)
        sources = [r for r in settings.region_names if r != region]
        missing = [r for r in positions if r not in settings.region_names]  # type: ignore[union-attr]
        if missing:
            raise JoinError(
                f"the backup's regions {missing} are not in JARVIS_REGIONS ({','.join(settings.region_names)})"
            )
        starts = start_offsets(positions, region, sources, settings.partitions)  # type: ignore[arg-type]
        create = object_factory(pipelines())
        with psycopg.connect(restore_dsn) as conn:
            folded = fold_archived(archived_rows(conn), create, lambda n: progress("fold", n))
        return restored, folded, starts
    finally:
        if drop is not None:
            drop()


# -- writing into the new region before MirrorMaker starts -------------------------------------------


def _producer(settings: Settings, region: str) -> Producer:
    return Producer(
        {**confluent_conf(settings, ADMIN, region), "acks": "all", "linger.ms": 20, "compression.type": "lz4"}
    )


def _flush(p: Producer, what: str) -> None:
    left = p.flush(60)
    if left:
        raise JoinError(f"{left} record(s) of {what} not delivered in 60 s")


def seed_changelog(settings: Settings, region: str, folded: Folded) -> int:
    """The folded states into the new region's fold changelog, each on its object's partition (the
    fold's table is co-partitioned with its sources); the fold reads them back when it starts."""
    changelog = roles.fold_changelog(region)
    spec = TopicSpec(changelog, "the fold's objects table", {"cleanup.policy": "compact"})
    admin = admin_client(settings.bootstrap(region), settings)
    existing = admin.list_topics(timeout=10).topics.get(changelog)
    if existing is not None:
        raise JoinError(f"{changelog} already exists in {region}: the region has folded before; join into empty clusters")
    ensure_topics(admin, [spec], settings.partitions)
    p = _producer(settings, region)
    for st in folded.states:
        p.produce(changelog, key=st.object_id.encode(), value=st.to_bytes(),
                  partition=partition_for(st.object_id, settings.partitions))  # fmt: skip
        p.poll(0)
    _flush(p, changelog)
    return len(folded.states)


def write_flow_starts(settings: Settings, region: str, version: str, starts: dict[str, dict[int, int]]) -> None:
    """Where MirrorMaker's flow from each source into `region` begins, and the same as JOINS_TOPIC
    records (lag is counted from there: connectors/regions.py)."""
    admin = admin_client(settings.bootstrap(region), settings)
    specs = [
        TopicSpec(mm2_offsets_topic(src), "MirrorMaker's offsets of one flow", {"cleanup.policy": "compact"},
                  partitions=MM2_OFFSET_PARTITIONS)
        for src in starts
    ] + [TopicSpec(JOINS_TOPIC, "where each flow into a joined region began", {"cleanup.policy": "compact"}, partitions=1)]  # fmt: skip
    present = admin.list_topics(timeout=10).topics
    used = [s.name for s in specs[:-1] if s.name in present]
    if used:
        raise JoinError(f"MirrorMaker has run into {region} already ({', '.join(used)} exist): join into empty clusters")
    ensure_topics(admin, specs, settings.partitions)
    p = _producer(settings, region)
    for src, parts in starts.items():
        for part, key, value in mm2_offset_records(src, parts):
            p.produce(mm2_offsets_topic(src), key=key, value=value, partition=part)
        k, v = join_record(region, src, version, parts)
        p.produce(JOINS_TOPIC, key=k, value=v, partition=0)
    _flush(p, "the flows' start offsets")


def check_retention(settings: Settings, starts: dict[str, dict[int, int]]) -> None:
    """Every start is still in its source's log: below the log's start, MirrorMaker would begin at
    the log's start and the operations in between would never reach the new region."""
    for src, parts in starts.items():
        c = Consumer({**confluent_conf(settings, ADMIN, src), "group.id": f"join-{uuid.uuid4().hex}"})
        try:
            for p, start in parts.items():
                low, high = c.get_watermark_offsets(TopicPartition(topics.OPS, p), timeout=10)
                if start < low:
                    raise JoinError(
                        f"{src}'s {topics.OPS}[{p}] starts at offset {low} now, after the backup's position {start} "
                        "(retention removed what lies between): take a newer backup"
                    )
                if start > high:
                    raise JoinError(
                        f"the backup's position {start} of {src}'s {topics.OPS}[{p}] is past its end ({high}): "
                        f"the backup is not of these clusters"
                    )
        finally:
            c.close()


# -- the running regions -------------------------------------------------------------------------------


def _regions_of(env: dict[str, str]) -> tuple[str, ...]:
    return tuple(r.strip() for r in env.get("JARVIS_REGIONS", "eu,us").split(",") if r.strip())


def restart_old_workers(settings: Settings, region: str, report: Report) -> list[str]:
    """Restart every worker of the other regions that runs with another region list."""
    restarted = []
    for r in settings.regions:
        if r.name == region:
            continue
        for role in roles.ROLES:
            for i in range(role.instances):
                proc = worker_proc(settings, role.name, r.name, i)
                pid = proc.pid()
                if pid is None or _regions_of(process_env(pid)) == settings.region_names:
                    continue
                proc.stop()
                proc.start()
                restarted.append(proc.name)
                report(f"restarted {proc.name} with regions {','.join(settings.region_names)}")
    return restarted


def join(
    settings: Settings,
    region: str,
    store: Store,
    version: str,
    key: bytes,
    restore_dsn: str | None = None,
    report: Report = _quiet,
    progress: Progress = _quiet,
) -> JoinResult:
    if region not in settings.region_names:
        raise JoinError(
            f"region {region!r} is not in JARVIS_REGIONS ({','.join(settings.region_names)}): "
            f"add it (e.g. JARVIS_REGIONS={','.join((*settings.region_names, region))}) and run again"
        )
    if len(settings.region_names) < 2:
        raise JoinError("a region joins others: JARVIS_REGIONS must name at least one more")
    if settings.region_names[-1] != region:
        # A region's ports follow its place in the list: the running ones keep theirs only if the
        # new region comes after them.
        raise JoinError(f"list {region} last in JARVIS_REGIONS ({','.join(settings.region_names)}): the running regions' ports follow their places")
    stack = Stack(settings)
    new = settings.region_config(region)
    if stack.broker(new).running():
        raise JoinError(f"region {region}'s Kafka already runs: a region joins once, into empty clusters")
    others = [r for r in settings.regions if r.name != region]
    down = [r.name for r in others if not stack._broker_ready(r)]
    if down:
        raise JoinError(f"the running regions must be up to join them: Kafka of {', '.join(down)} does not answer")
    steps: dict[str, float] = {}
    t = time.monotonic()
    restored, folded, starts = read_backup(settings, region, store, version, key, restore_dsn, progress)
    steps["restore and fold the backup"] = time.monotonic() - t
    check_retention(settings, starts)
    report(
        f"backup {version}: {folded.ops} archived operations folded into {len(folded.states)} objects"
        + (f" ({folded.failed} refused, as the live fold refuses them)" if folded.failed else "")
    )
    for src, parts in starts.items():
        report(f"flow {src} -> {region} starts at {src}'s {topics.OPS} offsets {dict(sorted(parts.items()))}")

    t = time.monotonic()
    if stack.mm2().stop():
        report("mirrormaker stopped (its flows resume from their own offsets)")
    seeded: list[int] = []

    def before_mirrors() -> None:
        seeded.append(seed_changelog(settings, region, folded))
        report(f"{seeded[0]} object states written to {roles.fold_changelog(region)}")
        write_flow_starts(settings, region, version, starts)
        report(f"MirrorMaker's flows into {region} begin at the backup's positions")

    stack.up(report, workers=True, before_mirrors=before_mirrors)
    steps["start the region"] = time.monotonic() - t
    t = time.monotonic()
    if restart_old_workers(settings, region, report):
        wait_for_queries(settings, report)
    steps["restart the other regions' workers"] = time.monotonic() - t
    return JoinResult(
        region, version, [r.name for r in others], starts, folded.ops, seeded[0] if seeded else 0,
        folded.folded, folded.failed, steps, folded.newest_dot,
    )  # fmt: skip


def wait_for_agreement(settings: Settings, timeout: float, interval: float = 1.0) -> tuple[bool, list[str], float]:
    """Until every region's digests agree: (agreed, differing partitions, seconds waited)."""
    t0 = time.monotonic()
    while True:
        ok, differing = agreement(digests(settings))
        waited = time.monotonic() - t0
        if ok or waited > timeout:
            return ok, differing, waited
        time.sleep(interval)


def _ends(c: Consumer, topic: str) -> dict[int, int]:
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        return {}
    return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}


def count_flows(
    settings: Settings,
    region: str,
    starts: dict[str, dict[int, int]],
    newest_dot: dict[tuple[str, int], tuple[int, int]],
) -> list[FlowCount]:
    """What MirrorMaker copied into `region` from each source, read from Kafka: records, their
    operations, and how many of those the backup's archive already held."""
    out = []
    for src, parts in starts.items():
        sc = Consumer({**confluent_conf(settings, ADMIN, src), "group.id": f"join-{uuid.uuid4().hex}"})
        dc = Consumer({**confluent_conf(settings, ADMIN, region), "group.id": f"join-{uuid.uuid4().hex}",
                       "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
        try:
            mirror = topics.mirrored(src)
            src_ends = _ends(sc, topics.OPS)
            dst_ends = _ends(dc, mirror)
            fc = FlowCount(src, sum(parts.values()), sum(src_ends.values()), sum(dst_ends.values()))
            todo = {p for p, e in dst_ends.items() if e > 0}
            for m in records_to_end(dc, mirror, dst_ends, todo):
                try:
                    runs = decode_verified_runs(m.value() or b"")
                except CodecError:
                    continue
                for run in runs:
                    for row in run.rows:
                        fc.copied_ops += 1
                        if covered(newest_dot, Dot(run.origin_region, run.partition, run.offset, row[0])):
                            fc.already_in_backup += 1
            out.append(fc)
        finally:
            sc.close()
            dc.close()
    return out

