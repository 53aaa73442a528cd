"""Each use-case app's headline operation per second beside the raw SDK operations it rests on, in
the same run, same client settings, each timed until its last write is acknowledged by Kafka (or
its verdict read), so the app layer's own cost is the difference.

  execute_trade              vs  counter.increment + gset.add + timeseries.append (its 3 writes)
  append_event (batched)     vs  gset.add of the same record
  append_event (sync)        vs  gset.add + flush per event
  reserve_inventory          vs  bcounter.decrement(wait=True) (the verdict round trip)
  update_circuit_breaker     vs  counter.increment + flush (it also reads the registration)
  process_iot_data           vs  its 4 MQTT messages published raw (paho, QoS 1, until PUBACK)
  check_rate_limit           vs  counter.increment with a flush every 20 ms (it also reads the
                                 other gateway's counter every 50 ms)
Each case runs app and raw rounds alternately (app, raw, app, raw, ...) and reports the median of
each, so a noisy neighbour weighs on both sides alike; before each case the region's fold is let
catch up with what the earlier ones wrote (a decided decrement on every partition), and the time it
took is printed.
Run `jarvis stack up` first. `--quick` for a small run, `--rounds N` for more rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.stack_check import require_stack
from jarvis.config import settings
from jarvis.partitioning import partition_for
from pipelines.apps._client import client, mqtt_device
from pipelines.apps.eventsourcing import EventStore, events_id
from pipelines.apps.factory import Factory, messages
from pipelines.apps.inventory import Store, stock_id
from pipelines.apps.mesh import Mesh, breaker_id
from pipelines.apps.ratelimit import RateLimiter
from pipelines.apps.trading import TradingDesk, orderbook_id, position_id, trades_id

REGION = "eu"


Body = Callable[[int], object]
Done = Callable[[], object]


@dataclass(frozen=True)
class Case:
    """One headline operation and the raw operations it rests on, each with what ends a round."""

    n: int
    app: Body
    app_done: Done
    raw: Body
    raw_done: Done
    close: Done = lambda: None

    def run(self, rounds: int) -> tuple[float, float]:
        apps, raws = [], []
        for r in range(rounds):
            apps.append(rate(self.n, self.app, self.app_done, r * self.n))
            raws.append(rate(self.n, self.raw, self.raw_done, r * self.n))
        self.close()
        return statistics.median(apps), statistics.median(raws)


def rate(n: int, body: Body, done: Done, start: int = 0) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + n):
        body(i)
    done()
    return n / (time.perf_counter() - t0)


def settle(run: str) -> float:
    """Seconds until the fold has decided a decrement sent now on every ingress partition: it has
    folded everything written before."""
    c = client(REGION, "bench-settle", track_verdicts=True)
    n = c.partitions
    ids: dict[int, str] = {}
    k = 0
    while len(ids) < n:
        ids.setdefault(partition_for(f"stock:settle-{run}-{k}", n), f"stock:settle-{run}-{k}")
        k += 1
    t0 = time.perf_counter()
    for oid in ids.values():
        c.bcounter(oid).increment(1)
        c.bcounter(oid).decrement(1)
    c.verdicts(600)
    c.close()
    return time.perf_counter() - t0


def trading(n: int, run: str) -> Case:
    c = client(REGION, "bench-trader")
    desk = TradingDesk(c, f"bench-{run}")
    acct = f"raw-{run}"
    pos, rec, book = (
        c.counter(position_id(acct, "ACME")),
        c.gset(trades_id(acct)),
        c.timeseries(orderbook_id("ACME")),
    )

    def raw(i: int) -> None:
        pos.increment(1 + i % 9)
        rec.add(
            {
                "trade_id": uuid.uuid4().hex,
                "symbol": "ACME",
                "quantity": 1 + i % 9,
                "price": 100.0,
                "ts": time.time(),
            }
        )
        book.append_data_point(time.time(), 100.0 + i % 3, {"qty": 1 + i % 9})

    return Case(n, lambda i: desk.execute_trade("ACME", 1 + i % 9, 100.0 + i % 3), c.flush, raw, c.flush)


def events(n: int, run: str, sync: bool) -> Case:
    c = client(REGION, f"bench-es-{sync}")
    es = EventStore(c, sync=sync)
    s = c.gset(events_id(f"raw-{run}-{sync}"))

    def raw(i: int) -> None:
        s.add({"version": f"{i:020d}", "type": "tick", "data": {"i": i}, "writer": "w"})
        if sync:
            c.flush()

    return Case(n, lambda i: es.append_event(f"agg-{run}-{sync}", "tick", {"i": i}), c.flush, raw, c.flush)


def inventory(n: int, run: str, rounds: int) -> Case:
    c = client(REGION, "bench-shop", track_verdicts=True)
    store = Store(c)
    store.restock(f"app-{run}", n * rounds)
    store.restock(f"raw-{run}", n * rounds)
    h = c.bcounter(stock_id(f"raw-{run}"))
    return Case(
        n,
        lambda i: store.reserve_inventory(f"app-{run}", 1, "c", "w"),
        c.flush,
        lambda i: h.decrement(1, wait=True),
        c.flush,
    )


def mesh(n: int, run: str) -> Case:
    c = client(REGION, "bench-mesh")
    m = Mesh(c)
    m.register_service(f"svc-{run}", "http://svc", threshold=10**9)
    time.sleep(1.0)  # the registration must be readable before failures can be reported
    h = c.counter(breaker_id(f"raw-{run}", 0))
    return Case(
        n,
        lambda i: m.update_circuit_breaker(f"svc-{run}", 1),
        c.flush,
        lambda i: (h.increment(1), c.flush()),
        c.flush,
    )


def ratelimit(n: int, run: str) -> Case:
    c = client(REGION, "bench-gw")
    gw = RateLimiter(c, "eu", ["eu", "us"], 10**9, 3600)
    h = c.counter(f"ratelimit:raw-{run}:orders:0:eu")
    last = [time.monotonic()]

    def raw(i: int) -> None:
        h.increment(1)
        if time.monotonic() - last[0] >= 0.02:
            c.flush()
            last[0] = time.monotonic()

    return Case(n, lambda i: gw.check_rate_limit(f"cust-{run}", "orders"), gw.flush, raw, c.flush, gw.close)


def factory(n: int, run: str) -> Case:
    creds = mqtt_device(REGION, f"bench-factory-{run}")
    f = Factory(*creds)
    report = {
        "line": f"bench-{run}",
        "produced": 1,
        "quality": 95.0,
        "status": "running",
        "readings": {"temp": 70.0},
    }
    raw = Factory(*creds)  # the same connection settings; publishing pre-built payloads directly
    msgs = [(t, json.dumps(p)) for t, p in messages("dev-raw", {**report, "line": f"raw-{run}"}, now=1.7e9)]

    def publish(i: int) -> None:
        for topic, payload in msgs:
            raw._infos.append(raw._mqtt.publish(topic, payload, qos=1))

    def close() -> None:
        f.close()
        raw.close()

    return Case(
        n,
        lambda i: f.process_iot_data(f"dev-{i % 10}", {**report, "ts": 1.7e9 + i}),
        f.flush,
        publish,
        raw.flush,
        close,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="app and raw rounds per case, alternated")
    a = ap.parse_args()
    require_stack(settings())
    big, small = (2_000, 100) if a.quick else (10_000, 300)
    run = uuid.uuid4().hex[:6]
    cases: list[tuple[str, str, Callable[[], Case]]] = [
        ("execute_trade", "3 raw writes (counter, gset, timeseries)", lambda: trading(big, run)),
        ("append_event, batched", "gset.add", lambda: events(big, run, False)),
        ("append_event, sync", "gset.add + flush", lambda: events(small, run, True)),
        ("reserve_inventory", "bcounter.decrement(wait=True)", lambda: inventory(small // 3, run, a.rounds)),
        ("update_circuit_breaker", "counter.increment + flush", lambda: mesh(small, run)),
        ("process_iot_data", "4 raw MQTT publishes (QoS 1)", lambda: factory(small * 4, run)),
        ("check_rate_limit", "counter.increment, flush every 20 ms", lambda: ratelimit(big, run)),
    ]
    rows = []
    for op, raw_name, make in cases:
        caught_up = settle(run)
        rows.append((op, raw_name, *make().run(a.rounds)))
        print(
            f"  {op}: done (the fold caught up with the earlier cases in {caught_up:.1f} s first)", flush=True
        )
    print(
        f"{'app operation':<24} {'app ops/s':>10}   {'raw SDK operation(s) it rests on':<42} {'raw ops/s':>10}  app/raw"
    )
    for op, raw_name, app_rate, raw_rate in rows:
        print(f"{op:<24} {app_rate:>10,.0f}   {raw_name:<42} {raw_rate:>10,.0f}  {app_rate / raw_rate:5.0%}")


if __name__ == "__main__":
    main()
