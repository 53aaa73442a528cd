"""Archive speed in region eu of the real local stack (the eu archiver worker must be running).

(a) rows/s archived end to end: N counter increments from the SDK (node bench-archive) over 100 objects
    `ctr:archbench-<run>-<i>`, from the first produce until jarvis.ops holds all N rows (SDK -> verifier
    -> jarvis.ops -> archiver -> PostgreSQL); also the archiver's own window, first row to last.
    And the archiver alone: both archivers stopped, N rows produced and folded, then one archiver
    drains the backlog (first row to last row).
    Baselines in the same run: a raw psycopg COPY of the same N rows (read back from jarvis.ops, the
    archiver's columns) into a logged table with jarvis.ops's primary key and indexes, and into a TEMP
    table without keys; rows/s and the ratio (target >= 50%).
(b) replay speed of one object `ctr:replaybench-<run>` with M increments: `run_replay` from Kafka and
    from the archive without a snapshot, then, after one `take_snapshot`, from the archive again.
    Seconds, the object's ops per second (M / seconds), and whether the replayed value equals M.
    Target: under 5 s from the archive with snapshots for 1M operations. The archivers snapshot the
    object on their own (every JARVIS_SNAPSHOT_EVERY_OPS): those are deleted first.
Run `jarvis stack up` first. `--quick` for a small run (N 20,000, M 100,000).
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
import uuid
from typing import Any

import orjson
import psycopg
import redis

from benchmarks.idle import wait_idle
from benchmarks.stack_check import require_stack
from connectors.archive.sink import OPS_COLUMNS
from connectors.kafka_clients import client_conf
from connectors.redis_cache import obj_key
from connectors.replay_sources import live_view
from connectors.replayer import Replayer
from connectors.sdk import Client
from jarvis.config import settings
from jarvis.replay_cli import Source, run_replay

REGION = "eu"
OBJECTS = 100


def archived(conn: psycopg.Connection, object_ids: list[str]) -> int:
    # `= ANY` of the run's ids counts the same rows as `LIKE '<prefix>%'` but through the index.
    return conn.execute(
        "SELECT count(*) FROM jarvis.ops WHERE object_id = ANY(%s)", (object_ids,)
    ).fetchone()[0]


class CountWatcher(threading.Thread):
    """Polls the archived row count; remembers when the first row and the last arrived."""

    def __init__(self, dsn: str, object_ids: list[str], total: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.dsn, self.object_ids, self.total, self.interval = dsn, object_ids, total, interval
        self.first: float | None = None
        self.done: float | None = None
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                self.count = archived(conn, self.object_ids)
                now = time.perf_counter()
                if self.count and self.first is None:
                    self.first = now
                if self.count >= self.total:
                    self.done = now
                    return
                time.sleep(self.interval)

    def wait(self, timeout: float) -> None:
        self.join(timeout)
        self.stop.set()
        if self.done is None:
            raise SystemExit(f"only {self.count} of {self.total} rows archived within {timeout:.0f} s")


class FoldWatcher(threading.Thread):
    """Polls the fold's Redis cache; remembers when the counters' values add up to the total."""

    def __init__(self, object_ids: list[str], total: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.keys = [obj_key(REGION, o) for o in object_ids]
        self.total, self.interval = total, interval
        self.redis = redis.Redis.from_url(settings().redis_url, socket_timeout=10)
        self.done: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            views = [orjson.loads(r) for r in self.redis.mget(self.keys) if r is not None]
            if sum(v["value"] for v in views) >= self.total:
                self.done = time.perf_counter()
                return
            time.sleep(self.interval)


def read_value(oid: str) -> Any:
    """The live value over HTTP (None while unknown or while the fold restarts).

    Same as tests/integration/pipeline_helpers.read_value, which `python benchmarks/archive.py` cannot
    import (`tests` is not an installed package).
    """
    try:
        view = live_view(settings(), REGION, oid)
    except Exception:  # noqa: BLE001 - a 503 or a refused connection: not ready yet
        return None
    return None if view is None else view["value"]


def produce(client: Client, object_ids: list[str], n: int) -> None:
    handles = [client.counter(o) for o in object_ids]
    for i in range(n):
        handles[i % len(handles)].increment(1)
    client.flush(timeout=600)


# -- (a) archiving ---------------------------------------------------------------------------------
def archive_rate(dsn: str, client: Client, run: str, n: int) -> dict[str, Any]:
    prefix = f"ctr:archbench-{run}-"
    ids = [f"{prefix}{i}" for i in range(OBJECTS)]
    watcher = CountWatcher(dsn, ids, n)
    fold = FoldWatcher(ids, n)
    t0 = time.perf_counter()
    watcher.start()
    fold.start()
    produce(client, ids, n)
    produced = time.perf_counter()
    watcher.wait(max(300.0, n / 200))
    fold.join(30)
    fold.stop.set()
    assert watcher.first is not None and watcher.done is not None
    with psycopg.connect(dsn) as conn:
        like = conn.execute(
            "SELECT count(*) FROM jarvis.ops WHERE object_id LIKE %s", (prefix + "%",)
        ).fetchone()[0]
        copy_rate = raw_copy_rate(conn, ids, durable=False)
        durable_rate = raw_copy_rate(conn, ids, durable=True)
    return {
        "end_to_end": n / (watcher.done - t0),
        "window": n / max(1e-9, watcher.done - watcher.first),
        "produce_s": produced - t0,
        "seconds": watcher.done - t0,
        "fold_s": None if fold.done is None else fold.done - t0,
        "like_count": like,
        "copy": copy_rate,
        "copy_durable": durable_rate,
        "alone": archiver_alone(dsn, client, run, n),
    }


def raw_copy_rate(conn: psycopg.Connection, object_ids: list[str], durable: bool) -> float:
    """COPY of the same rows (same columns, as the archiver writes them) into a table like jarvis.ops.

    durable=False: a TEMP table without keys (the floor of what COPY costs); durable=True: a logged
    table with jarvis.ops's primary key and indexes, which is what an archive has to maintain.
    """
    cols = ", ".join(f"{c}::text" if c in ("payload", "metadata") else c for c in OPS_COLUMNS)
    rows = conn.execute(f"SELECT {cols} FROM jarvis.ops WHERE object_id = ANY(%s)", (object_ids,)).fetchall()
    table = "jarvis.bench_copy" if durable else "bench_copy"
    if durable:
        conn.execute(f"CREATE TABLE {table} (LIKE jarvis.ops INCLUDING DEFAULTS INCLUDING INDEXES)")
    else:
        conn.execute(f"CREATE TEMP TABLE {table} (LIKE jarvis.ops INCLUDING DEFAULTS)")
    conn.commit()
    try:
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(OPS_COLUMNS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        conn.commit()
        elapsed = time.perf_counter() - t0
        copied = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.rollback()
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.commit()
    if copied != len(rows):
        raise SystemExit(f"raw COPY wrote {copied} of {len(rows)} rows")
    return len(rows) / elapsed


def archiver_alone(dsn: str, client: Client, run: str, n: int) -> float:
    """The archiver's own code path (streams.archiver.Archiver, as the worker runs it: decode, COPY and
    dedupe, commit, Kafka offset commit) draining a backlog of N rows, timed from the first record to
    the last commit: the archivers are stopped, N operations are produced and folded, then the backlog
    is read from the offsets where it starts."""
    from confluent_kafka import Consumer, TopicPartition

    from connectors.archive.sink import ArchiveSink
    from jarvis import topics
    from jarvis.stack.workers import worker_proc
    from streams.archiver import Archiver

    s = settings()
    procs = [worker_proc(s, "archiver", r) for r in s.region_names]
    for p in procs:
        p.stop()
    ids = [f"ctr:archalone-{run}-{i}" for i in range(OBJECTS)]
    c = Consumer(
        {**client_conf(s.bootstrap(REGION)), "group.id": f"bench-{run}", "enable.auto.commit": False}
    )
    try:
        parts = list(c.list_topics(topics.OPS, timeout=10).topics[topics.OPS].partitions)
        starts = {p: c.get_watermark_offsets(TopicPartition(topics.OPS, p), timeout=10)[1] for p in parts}
        produce(client, ids, n)
        fold = FoldWatcher(ids, n)
        fold.start()
        fold.join(300)
        fold.stop.set()
        ends = {p: c.get_watermark_offsets(TopicPartition(topics.OPS, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topics.OPS, p, starts[p]) for p in parts if ends[p] > starts[p]])
        remaining = {p for p in parts if ends[p] > starts[p]}
        archiver = Archiver(lambda: ArchiveSink(dsn), REGION, c)
        t0: float | None = None
        try:
            while remaining:
                msgs = c.consume(num_messages=2000, timeout=1.0)
                if not msgs:
                    continue
                if t0 is None:
                    t0 = time.perf_counter()
                for m in msgs:
                    if not m.error() and m.offset() >= ends[m.partition()] - 1:
                        remaining.discard(m.partition())
                archiver.archive(msgs)
            archiver.flush()
            done = time.perf_counter()
        finally:
            archiver.close()
        if archived(psycopg.connect(dsn), ids) != n:
            raise SystemExit("the backlog was not archived completely")
        return n / max(1e-9, done - (t0 or done))
    finally:
        c.close()
        for p in procs:
            if not p.running():
                p.start()


# -- (b) replay ------------------------------------------------------------------------------------
class RecordCount:
    """Stands in for run_replay's progress bar: keeps the Kafka records read."""

    def __init__(self) -> None:
        self.done = self.total = 0

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, task: int, completed: int = 0, total: int | None = None) -> None:
        self.done, self.total = completed, total or 0


def snapshots(conn: psycopg.Connection, oid: str) -> tuple[int, int]:
    row = conn.execute(
        "SELECT count(*), coalesce(max(ops), 0) FROM jarvis.snapshots WHERE object_id = %s", (oid,)
    ).fetchone()
    conn.commit()
    return row[0], row[1]


def delete_snapshots(conn: psycopg.Connection, oid: str) -> int:
    deleted = conn.execute("DELETE FROM jarvis.snapshots WHERE object_id = %s", (oid,)).rowcount
    conn.commit()
    return deleted


def settle_snapshots(conn: psycopg.Connection, oid: str, quiet_s: float = 8.0, timeout: float = 180) -> None:
    """Wait until the archivers' periodic snapshots of `oid` (every JARVIS_SNAPSHOT_EVERY_OPS) stop coming.

    An archiver takes them after committing the rows, so they can land seconds after the count is full.
    """
    last, since = snapshots(conn, oid), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = snapshots(conn, oid)
        if now != last:
            last, since = now, time.monotonic()


def timed_replay(oid: str, source: Source, records: RecordCount | None = None) -> tuple[float, Any]:
    t0 = time.perf_counter()
    report = run_replay(oid, None, source, REGION, records)
    return time.perf_counter() - t0, report


def replay_without_snapshot(conn: psycopg.Connection, oid: str, attempts: int = 4) -> tuple[float, Any, int]:
    """Delete the object's snapshots and replay from the archive; again if an archiver snapshotted meanwhile."""
    for attempt in range(attempts):
        delete_snapshots(conn, oid)
        secs, rep = timed_replay(oid, Source.archive)
        if rep.snapshot is None:
            return secs, rep, attempt
        time.sleep(5)
    raise SystemExit(f"an archiver kept snapshotting {oid} during {attempts} replays without a snapshot")


def replay_speed(dsn: str, client: Client, run: str, m: int) -> list[tuple[str, float, Any]]:
    s = settings()
    oid = f"ctr:replaybench-{run}"
    t0 = time.perf_counter()
    produce(client, [oid], m)
    watcher = CountWatcher(dsn, [oid], m, interval=0.2)
    watcher.start()
    watcher.wait(max(300.0, m / 200))
    archived_s = time.perf_counter() - t0
    deadline = time.monotonic() + max(300.0, m / 500)
    while read_value(oid) != m:
        if time.monotonic() > deadline:
            raise SystemExit(f"{oid} reads {read_value(oid)} over HTTP, not {m}")
        time.sleep(0.2)
    print(f"(b) {oid}: {m} increments produced, all archived after {archived_s:.1f} s, live value {m}")

    results: list[tuple[str, float, Any]] = []
    replayer = Replayer.from_settings(s)
    with psycopg.connect(dsn) as conn:
        settle_snapshots(conn, oid)
        records = RecordCount()
        secs, rep = timed_replay(oid, Source.kafka, records)
        results.append((f"kafka ({REGION}), {records.done} records read", secs, rep))
        secs, rep, retries = replay_without_snapshot(conn, oid)
        results.append((f"archive, no snapshot{f' ({retries} retried)' if retries else ''}", secs, rep))
        delete_snapshots(conn, oid)  # take_snapshot then folds all M operations
        t0 = time.perf_counter()
        covered = replayer.snapshot(conn, oid, REGION)
        conn.commit()
        print(
            f"(b) take_snapshot: {time.perf_counter() - t0:.2f} s, "
            + (f"covers {covered} ops" if covered else "nothing new since the archivers' snapshot")
        )
        secs, rep = timed_replay(oid, Source.archive)
        results.append(("archive, from the snapshot", secs, rep))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "-n", type=int, default=None, help="(a) rows to archive (default 100,000; --quick 20,000)"
    )
    ap.add_argument("-m", type=int, default=None, help="(b) ops of the replayed object (default 1,000,000)")
    ap.add_argument("--quick", action="store_true", help="a small run: N 20,000, M 100,000")
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 100_000)
    m = args.m or (100_000 if args.quick else 1_000_000)
    s = settings()
    require_stack(s)
    dsn = s.postgres_dsn
    print(f"(waited {wait_idle(settings()):.0f} s for the stack to drain earlier backlogs)")
    run = uuid.uuid4().hex[:8]
    client = Client(region=REGION, node_id="bench-archive", dev_trust=True)

    a = archive_rate(dsn, client, run, n)
    print(
        f"(a) {n} increments over {OBJECTS} objects ctr:archbench-{run}-*: produced in {a['produce_s']:.1f} s, "
        f"all archived after {a['seconds']:.1f} s (LIKE count {a['like_count']}); "
        f"live in the fold after {a['fold_s'] or float('nan'):.1f} s"
    )
    base = a["copy_durable"]
    print(f"{'(a) archiving':<48}{'rows/s':>10}{'of raw COPY (same keys)':>25}")
    for name, rate in (
        ("end to end: first produce -> all archived", a["end_to_end"]),
        ("archiver window: first row -> last row", a["window"]),
        ("archiver code path alone, draining a backlog", a["alone"]),
        ("baseline: raw COPY, table with jarvis.ops keys", base),
        ("baseline: raw COPY, TEMP table without keys", a["copy"]),
    ):
        print(f"{name:<48}{rate:>10.0f}{rate / base:>24.0%}")
    verdict = "met" if a["alone"] >= 0.5 * base else "NOT met"
    print(f"target: archiver >= 50% of a raw COPY into an equally keyed table: {verdict}")

    results = replay_speed(dsn, client, run, m)
    print(f"{'(b) replay of ' + str(m) + ' ops':<44}{'seconds':>9}{'folded':>9}{'ops/s':>11}  value")
    for name, secs, rep in results:
        check = "OK" if rep.value == m else f"MISMATCH ({rep.value})"
        live = "" if not rep.differences() else f"; differs from live: {'; '.join(rep.differences())}"
        snap = f"; snapshot of {rep.snapshot['ops']} ops" if rep.snapshot else ""
        print(f"{name:<44}{secs:>9.2f}{rep.ops_folded:>9}{m / secs:>11.0f}  {check}{snap}{live}")
    print("ops/s: the object's M operations / seconds (a replay from a snapshot folds only what it misses)")
    with_snap = results[-1][1]
    print(
        f"target: 1M ops from the archive with a snapshot in < 5 s: {with_snap:.2f} s here for {m} ops "
        f"({'under' if with_snap < 5 else 'OVER'} 5 s)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
