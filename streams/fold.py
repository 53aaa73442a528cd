"""Fold worker: consumer group on jarvis.ops and every mirrored <region>.jarvis.ops.

Folds verified operations into a Faust table of CRDT state keyed by object id (changelog in Kafka).
Each table value holds the object's state *and* its causal context (jarvis/materialize.py), so both
reach the changelog in one record. An object changed by many messages is written to the table (and
its changelog) once per settle (SETTLE_EVERY_S), not once per message.

Acks are manual: a message is acked, and so becomes committable, only once the changelog records
holding its effect (and any rejected-operation records it produced) are acknowledged by Kafka.
Faust commits only acked offsets, so a committed offset's effect is always in the changelog, however
Faust's own pre-commit flush behaves (in 0.15.3 it gives up after 100 ms, and one `kill -9` run lost
a 500-op message's effect that way). After a crash the worker resumes at or before what the
changelog holds; the replayed operations are recognised by their dots and skipped: exactly-once
effect on the state.

The fold serves the stream query API (streams/query.py) on its Faust web server and keeps the latest
value of every changed object in Redis (one script call per flush, with change notifications).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import faust
from faust.types import TP
from prometheus_client import Counter, Gauge, Histogram

from connectors.otel import Spans
from connectors.redis_cache import CacheUnavailable, RedisCache
from connectors.sdk import Client
from jarvis import topics, tracecontext
from jarvis.codec import CodecError, decode_verified, decode_verified_runs
from jarvis.codec.decisions import FoldDecisions, encode_decisions
from jarvis.config import Settings
from jarvis.crdt.bcounter_spec import JUDGED, decide_in
from jarvis.materialize import ObjectState, RunFolded, fold_run
from jarvis.ops import DotRun, Operation
from pipelines.loader import pipelines
from streams.app import make_app
from streams.cache_rebuild import CacheRebuild
from streams.faust_compat import recovery_progress, set_producer_buffer_limit
from streams.fold_state import INFLIGHT_LIMIT, FoldState
from streams.metrics import install_metrics_page
from streams.query import install_query_views
from streams.recovery_watchdog import install_recovery_watchdog, restart_worker
from streams.rejected import rejected_message
from streams.rights import DECIDE_EVERY_S, RightsService
from streams.source_order import RESEEK_S, Step

FOLDED = Counter("jarvis_fold_ops_total", "Operations folded into state", ["region", "type"])
DUPLICATES = Counter("jarvis_fold_duplicates_total", "Duplicate operations skipped by their dots", ["region"])
FOLD_ERRORS = Counter("jarvis_fold_rejected_total", "Operations the fold could not apply", ["region"])
LATENCY = Histogram(
    "jarvis_fold_latency_seconds",
    "From an operation's HLC timestamp to its effect in the table",
    ["region"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge(
    "jarvis_fold_consumer_lag", "Records behind the end of each source partition", ["region", "topic"]
)
OBJECTS = Gauge("jarvis_fold_objects_cached", "Decoded objects held in memory", ["region"])

log = logging.getLogger(__name__)

UNWRITTEN_LIMIT = 50_000  # changed objects held back from the table between two settles at most
SETTLE_EVERY_S = 0.5  # how often held-back changes are written and their messages acked
# Objects written to Redis per flush at most: building one pipeline for 50,000 changed objects held
# the event loop (queries, /metrics) for seconds when a million new objects arrived.
CACHE_BATCH = 2_000
# How often changed objects are written to Redis. Each write serialises every object changed since
# the last one, so with a few thousand hot objects this is a cost per object per flush, not per
# operation: at 0.05 s the flushes took ~10% of the fold's CPU and most of Redis's (py-spy --gil).
CACHE_EVERY_S = 0.1
# Objects per chunk of a cache rebuild (streams/cache_rebuild.py): reading each from the table and
# serialising its view ran ~12,500 objects/s, so 2,000 a chunk held the event loop for 160 ms.
REBUILD_BATCH = 500


class Source(Protocol):
    """What the fold asks of its consumer besides the messages: the Faust consumer has these."""

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]: ...

    async def seek(self, partition: TP, offset: int) -> None: ...

    def highwater(self, tp: TP) -> int | None: ...


class FoldWorker:
    """The fold agent's work on each message and its timers; build() wires them into Faust.

    `source` is the Faust consumer (looked up when used: Faust makes it when the worker starts);
    `send_rejected` sends a jarvis.ops.rejected message and returns its delivery future; `restart`
    replaces the worker process (streams/recovery_watchdog.py)."""

    def __init__(
        self,
        state: FoldState,
        source: Callable[[], Source],
        send_rejected: Callable[[bytes, bytes], Awaitable[Any]],
        restart: Callable[[], Awaitable[None]],
        rebuild: CacheRebuild | None = None,
        rights: RightsService | None = None,
        send_decided: Callable[[int, bytes, bytes], Awaitable[Any]] | None = None,
        spans: Spans | None = None,
    ) -> None:
        self.spans = spans or Spans.off()
        self.state = state
        self.rebuild = rebuild
        self.region = state.region
        self.source = source
        self.send_rejected = send_rejected
        self.restart = restart
        self.rights = rights
        self.send_decided = send_decided

    async def on_revoked(self, app: Any, revoked: Any, **kwargs: Any) -> None:
        # Faust waited for every message to be acked just before, so everything is written; objects
        # of partitions we may no longer own must be re-read from the table when needed.
        self.state.write_unwritten()
        self.state.live.clear()
        self.state.order.reset()
        if self.rebuild is not None:
            self.rebuild.reset()

    async def on_assigned(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        self.state.live.clear()
        self.state.recovering = True
        self.state.order.reset()
        self.state.read.clear()
        if self.rebuild is not None:
            self.rebuild.reset()

    async def handle(self, event: Any) -> None:
        """One message of the agent's stream (acked later, by FoldState.settle)."""
        state = self.state
        msg = event.message
        state.start_batch()
        tp = (msg.topic, msg.partition)
        state.read[tp] = msg.offset
        # jarvis.ops and its mirrors have no offset gaps (no transactions, no compaction).
        step = state.order.step(tp, msg.offset, state.position, time.monotonic())
        try:
            if step is Step.FOLD:
                await self.fold_event(event)
                state.order.folded(tp, msg.offset)
            elif step is Step.SEEK:
                await self.go_back(msg)
        finally:
            # Only now: settle() may run while fold_event awaits, and must not ack this message
            # before its effect is among the held-back changes it writes.
            state.held.append(event)

    async def reject(
        self, event: Any, reasons: list[str], op: Operation | None = None, run: DotRun | None = None,
        index: int | None = None,
    ) -> None:  # fmt: skip
        """Send a rejected record. One of this region's own operations (`run` and `index` given) is
        recorded under its ingress position, where the SDK's verdicts look for it (a bounded
        counter's refused decrement is decided here, after the verifier accepted it)."""
        msg = event.message
        own = run is not None and run.origin_region == self.region
        key, value = rejected_message(
            original=event.value or b"",
            reasons=reasons,
            topic=topics.INGRESS if own else msg.topic,
            partition=run.partition if own and run else msg.partition,
            offset=run.offset if own and run else msg.offset,
            index=index if own else None,
            op=op,
            region=self.region,
        )
        self.state.inflight.append(await self.send_rejected(key, value))
        FOLD_ERRORS.labels(self.region).inc()

    async def go_back(self, msg: Any) -> None:
        """A message arrived ahead of the next offset to fold: send the consumer back for the rest."""
        state, region, source = self.state, self.region, self.source()
        tp = (msg.topic, msg.partition)
        target = state.order.expected[tp]
        earliest = (await source.earliest_offsets(msg.tp)).get(msg.tp)
        if earliest is not None and earliest > target:
            log.error(
                "fold %s: %s[%d] offsets %d..%d are gone from the log (retention) before being folded",
                region, *tp, target, earliest - 1,
            )  # fmt: skip
            state.order.skip_to(tp, earliest)
            target = earliest
        log.warning(
            "fold %s: %s[%d] delivered offset %d before %d: going back", region, *tp, msg.offset, target
        )
        await source.seek(msg.tp, target)

    def state_of(self, object_id: str, crdt_type: str) -> ObjectState:
        return self.state.load(object_id) or self.state.create(object_id, crdt_type)

    async def fold_event(self, event: Any) -> None:
        if not self.spans.enabled:
            await self._fold_event(event)
            return
        started = time.time_ns()
        await self._fold_event(event)
        msg = event.message
        self.spans.record("fold", tracecontext.from_headers(msg.headers), started, time.time_ns(), {
            "jarvis.region": self.region, "messaging.destination.name": msg.topic,
            "messaging.kafka.partition": msg.partition, "messaging.kafka.offset": msg.offset,
        })  # fmt: skip

    async def _fold_event(self, event: Any) -> None:
        state, region = self.state, self.region
        msg = event.message
        try:
            runs = decode_verified_runs(event.value or b"")
        except CodecError as e:
            await self.reject(event, [f"undecodable record on {msg.topic}: {e}"])
            return
        except Exception as e:  # noqa: BLE001 - never crash the fold on a bad record
            await self.reject(event, [f"undecodable record on {msg.topic}: {type(e).__name__}: {e}"])
            return
        done = RunFolded()
        failed: list[tuple[DotRun, int, str]] = []
        decisions: list[FoldDecisions] = []
        for run in runs:
            before, own = len(done.failed), run.origin_region == region
            bc, dups = done.folded.get("bcounter", 0), done.duplicates
            fold_run(run, self.state_of, done)
            failed.extend((run, i, why) for i, why in done.failed[before:])
            if own and (len(done.failed) > before or done.folded.get("bcounter", 0) > bc):
                d = self.decisions_of(run, dict(done.failed[before:]), done.duplicates > dups)
                if d is not None:
                    decisions.append(d)
        if self.rights is not None and ("bcounter" in done.folded or failed):
            for run in runs:
                self.rights.note(run)
        if failed:
            # Rare: the operations themselves (ids for the rejected records) are decoded only now.
            vb = decode_verified(event.value or b"")
            by_dot = {(d.partition, d.offset, d.index): op for d, op in zip(vb.dots, vb.ops, strict=True)}
            for run, index, reason in failed:
                op = by_dot.get((run.partition, run.offset, index))
                await self.reject(event, [reason], op, run, index)
                if op is not None and self.rights is not None:
                    self.rights.refused(op, reason)
        if decisions and self.send_decided is not None:
            for d in decisions:
                key = f"{d.region}/{d.partition}/{d.offset}".encode()
                self.state.inflight.append(await self.send_decided(d.partition, key, encode_decisions(d)))
        for crdt_type, n in done.folded.items():
            FOLDED.labels(region, crdt_type).inc(n)
        if done.duplicates:
            DUPLICATES.labels(region).inc(done.duplicates)
        for oid, st in done.changed.items():
            state.changed(oid, msg.partition, st)
        if len(state.unwritten) >= UNWRITTEN_LIMIT:
            state.write_unwritten()
        await state.ebb()
        if done.newest_hlc:
            LATENCY.labels(region).observe(max(0.0, time.time() - (done.newest_hlc >> 16) / 1000))

    def decisions_of(self, run: DotRun, refused: dict[int, str], duplicates: bool) -> FoldDecisions | None:
        """This region's verdicts on the bounded-counter decrements and transfers of one folded run.
        Asked only of runs that folded a bounded counter or refused something, so other messages
        cost nothing. A run with duplicates (a message folded again: rebalance, crash) was decided
        the first time; only its refusals are certainly new (a duplicate is skipped before judging),
        an applied operation there may be an old one, and is not published again."""
        judged = [r[0] for r in run.rows if r[2] == "bcounter" and r[3] in JUDGED]
        accepted = [] if duplicates else [i for i in judged if i not in refused]
        no = {i: refused[i] for i in judged if i in refused}
        if not accepted and not no:
            return None
        return FoldDecisions(self.region, run.partition, run.offset, accepted, no)

    async def settle(self) -> None:
        try:
            await self.state.settle()
        except Exception as e:  # noqa: BLE001 - Kafka refused a record: start again from the changelog
            log.error(
                "fold %s: a changelog or rejected record was not delivered (%r); restarting", self.region, e
            )
            await self.restart()

    async def flush_cache(self) -> None:
        """Write changed objects to Redis, then a share of any cache rebuild (one after the other:
        streams/cache_rebuild.py says why). Redis being unreachable never stops the fold: changes
        are dropped from the queue and the rebuild writes every object once Redis answers again."""
        state, rebuild = self.state, self.rebuild
        down = rebuild is not None and rebuild.down
        try:
            if state.dirty and not down:
                dirty = state.take_dirty(CACHE_BATCH)
                await state.cache.put_many({oid: state.view_bytes(st) for oid, st in dirty.items()})
            if rebuild is not None:
                await rebuild.step(time.monotonic())
        except CacheUnavailable as e:
            if not down:
                log.warning("fold %s: %s; folding on, the cache is rebuilt once Redis is back", self.region, e)
            state.dirty.clear()
            if rebuild is not None:
                rebuild.lost(time.monotonic())
        OBJECTS.labels(self.region).set(len(state.live))

    async def seek_again(self) -> None:
        for (topic, partition), target in self.state.order.overdue(time.monotonic()):
            log.warning(
                "fold %s: %s[%d] offset %d still missing: going back again",
                self.region,
                topic,
                partition,
                target,
            )
            try:
                await self.source().seek(TP(topic, partition), target)
            except Exception as e:  # noqa: BLE001 - revoked meanwhile: the next owner starts from the changelog
                log.warning("fold %s: cannot seek %s[%d]: %r", self.region, topic, partition, e)

    async def measure_lag(self) -> None:
        source = self.source()
        for (topic, partition), offset in list(self.state.read.items()):
            try:
                high = source.highwater(TP(topic, partition))
            except Exception:  # noqa: BLE001 - not assigned any more
                continue
            if high is not None:
                LAG.labels(self.region, topic).set(max(0, high - offset - 1))


def install_readiness(app: faust.App, table: Any, state: FoldState) -> None:
    """Feed FoldState.readiness from Faust: each assignment (every partition number of every topic
    assigned: the fold's sources and its tables' changelogs are co-partitioned) and each completed
    table recovery (Table.on_recover runs once per rebalance, after the changelogs are read)."""

    async def assigned(app_: Any, assigned: Any, **kwargs: Any) -> None:
        generation = recovery_progress(app).rebalancing_count
        state.readiness.on_assigned({tp.partition for tp in assigned}, generation)

    async def recovered() -> None:
        state.readiness.on_recovered(recovery_progress(app).rebalancing_count)

    app.on_partitions_assigned.connect(assigned)
    table.on_recover(recovered)


def build(settings: Settings, region: str, instance: int = 0) -> faust.App:
    app = make_app(settings, "fold", region, instance)
    # Faust holds every incoming message back while its producer buffer has more than 100 records,
    # draining 100 per message: each settle's burst of changelog records (one per changed object)
    # stopped the fold for ~150 ms (py-spy and /proc: the fold idle with its input waiting). The
    # fold brakes on its own unacknowledged records instead (FoldState.ebb).
    set_producer_buffer_limit(app, INFLIGHT_LIMIT)
    sources = [topics.OPS, *(topics.mirrored(r) for r in settings.region_names if r != region)]
    ops_in = app.topic(*sources, key_type=bytes, value_type=bytes)
    rejected_out = app.topic(topics.REJECTED, key_type=bytes, value_type=bytes)
    table = app.Table("objects", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    positions = app.Table("positions", partitions=settings.partitions, key_type=bytes, value_type=bytes)

    state = FoldState(region, table, pipelines(), RedisCache(settings.redis_url, region), positions)
    decide_in(region)  # this process's fold judges its region's bounded-counter decrements
    rights = RightsService(region, state.peek)
    install_metrics_page(app)
    install_recovery_watchdog(app)
    install_query_views(app, state, settings.max_watchers, settings)

    async def send_rejected(key: bytes, value: bytes) -> Any:
        return await rejected_out.send(key=key, value=value)

    decided_out = app.topic(topics.DECIDED, key_type=bytes, value_type=bytes)

    async def send_decided(partition: int, key: bytes, value: bytes) -> Any:
        return await decided_out.send(key=key, value=value, partition=partition)

    rebuild = CacheRebuild(state, settings.partitions, REBUILD_BATCH)
    worker = FoldWorker(
        state,
        lambda: app.consumer,
        send_rejected,
        partial(restart_worker, app),
        rebuild=rebuild,
        rights=rights,
        spans=Spans.exporting(settings.otel_endpoint, f"jarvis-fold-{region}"),
        send_decided=send_decided,
    )
    producer: list[Client] = []  # made on the first round that emits: it asks Kafka for metadata

    async def rights_round() -> None:
        due = rights.due()
        if not due:
            return
        try:
            if not producer:
                producer.append(
                    await asyncio.to_thread(
                        Client, region=region, node_id=f"fold-{region}", settings=settings, linger_ms=1,
                        principal="fold",
                    )
                )
            client = producer[0]
            for oid, kind, args in due:
                client.emit(oid, "bcounter", kind, args)
            await asyncio.to_thread(client.flush, 10.0)
        except Exception as e:  # noqa: BLE001 - the next round publishes the state again
            log.warning("fold %s: bounded-counter decisions not published (%r)", region, e)
            for oid, kind, _args in due:
                if kind == "decided":
                    rights.decided.add(oid)

    app.on_partitions_revoked.connect(worker.on_revoked)
    app.on_partitions_assigned.connect(worker.on_assigned)
    install_readiness(app, table, state)

    @app.agent(ops_in)
    async def fold(stream: faust.StreamT) -> None:  # the agent's name stays streams.fold.build.<locals>.fold
        state.acker = manual = stream.noack()
        async for event in manual.events():
            await worker.handle(event)

    app.timer(SETTLE_EVERY_S)(worker.settle)
    app.timer(DECIDE_EVERY_S)(rights_round)
    app.timer(CACHE_EVERY_S)(worker.flush_cache)
    app.timer(RESEEK_S)(worker.seek_again)
    app.timer(2.0)(worker.measure_lag)
    return app
