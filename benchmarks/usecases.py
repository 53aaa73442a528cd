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
Run `jarvis stack up` first. `--quick` for a small run.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable

from benchmarks.stack_check import require_stack
from jarvis.config import settings
from pipelines.apps._client import client, mqtt_device
from pipelines.apps.eventsourcing import EventStore, events_id
from pipelines.apps.factory import Factory, messages
from pipelines.apps.inventory import Store, stock_id
from pipelines.apps.mesh import Mesh, breaker_id
from pipelines.apps.ratelimit import RateLimiter
from pipelines.apps.trading import TradingDesk, orderbook_id, position_id, trades_id

REGION = "eu"


def rate(n: int, body: Callable[[int], object], done: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        body(i)
    done()
    return n / (time.perf_counter() - t0)


def trading(n: int, run: str) -> tuple[float, float]:
    c = client(REGION, "bench-trader")
    desk = TradingDesk(c, f"bench-{run}")
    app = rate(n, lambda i: desk.execute_trade("ACME", 1 + i % 9, 100.0 + i % 3), c.flush)
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

    return app, rate(n, raw, c.flush)


def events(n: int, run: str, sync: bool) -> tuple[float, float]:
    c = client(REGION, f"bench-es-{sync}")
    es = EventStore(c, sync=sync)
    app = rate(n, lambda i: es.append_event(f"agg-{run}-{sync}", "tick", {"i": i}), c.flush)
    s = c.gset(events_id(f"raw-{run}-{sync}"))

    def raw(i: int) -> None:
        s.add({"version": f"{i:020d}", "type": "tick", "data": {"i": i}, "writer": "w"})
        if sync:
            c.flush()

    return app, rate(n, raw, c.flush)


def inventory(n: int, run: str) -> tuple[float, float]:
    c = client(REGION, "bench-shop", track_verdicts=True)
    store = Store(c)
    store.restock(f"app-{run}", n)
    store.restock(f"raw-{run}", n)
    app = rate(n, lambda i: store.reserve_inventory(f"app-{run}", 1, "c", "w"), c.flush)
    h = c.bcounter(stock_id(f"raw-{run}"))
    return app, rate(n, lambda i: h.decrement(1, wait=True), c.flush)


def mesh(n: int, run: str) -> tuple[float, float]:
    c = client(REGION, "bench-mesh")
    m = Mesh(c)
    m.register_service(f"svc-{run}", "http://svc", threshold=10**9)
    time.sleep(1.0)  # the registration must be readable before failures can be reported
    app = rate(n, lambda i: m.update_circuit_breaker(f"svc-{run}", 1), c.flush)
    h = c.counter(breaker_id(f"raw-{run}", 0))
    return app, rate(n, lambda i: (h.increment(1), c.flush()), c.flush)


def ratelimit(n: int, run: str) -> tuple[float, float]:
    c = client(REGION, "bench-gw")
    gw = RateLimiter(c, "eu", ["eu", "us"], 10**9, 3600)
    app = rate(n, lambda i: gw.check_rate_limit(f"cust-{run}", "orders"), gw.flush)
    h = c.counter(f"ratelimit:raw-{run}:orders:0:eu")
    last = [time.monotonic()]

    def raw(i: int) -> None:
        h.increment(1)
        if time.monotonic() - last[0] >= 0.02:
            c.flush()
            last[0] = time.monotonic()

    return app, rate(n, raw, c.flush)


def factory(n: int, run: str) -> tuple[float, float]:
    creds = mqtt_device(REGION, f"bench-factory-{run}")
    f = Factory(*creds)
    report = {
        "line": f"bench-{run}",
        "produced": 1,
        "quality": 95.0,
        "status": "running",
        "readings": {"temp": 70.0},
    }
    app = rate(n, lambda i: f.process_iot_data(f"dev-{i % 10}", {**report, "ts": 1.7e9 + i}), f.flush)
    raw = Factory(*creds)  # the same connection settings; publishing pre-built payloads directly
    msgs = [(t, json.dumps(p)) for t, p in messages("dev-raw", {**report, "line": f"raw-{run}"}, now=1.7e9)]

    def publish(i: int) -> None:
        for topic, payload in msgs:
            raw._infos.append(raw._mqtt.publish(topic, payload, qos=1))

    out = app, rate(n, publish, raw.flush)
    f.close()
    raw.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    require_stack(settings())
    big, small = (2_000, 100) if a.quick else (20_000, 500)
    run = uuid.uuid4().hex[:6]
    rows = [
        ("execute_trade", "3 raw writes (counter, gset, timeseries)", *trading(big, run)),
        ("append_event, batched", "gset.add", *events(big, run, False)),
        ("append_event, sync", "gset.add + flush", *events(small, run, True)),
        ("reserve_inventory", "bcounter.decrement(wait=True)", *inventory(small // 5, run)),
        ("update_circuit_breaker", "counter.increment + flush", *mesh(small, run)),
        ("process_iot_data", "4 raw MQTT publishes (QoS 1)", *factory(small * 4, run)),
        ("check_rate_limit", "counter.increment, flush every 20 ms", *ratelimit(big, run)),
    ]
    print(
        f"{'app operation':<24} {'app ops/s':>10}   {'raw SDK operation(s) it rests on':<42} {'raw ops/s':>10}  app/raw"
    )
    for op, raw_name, app_rate, raw_rate in rows:
        print(f"{op:<24} {app_rate:>10,.0f}   {raw_name:<42} {raw_rate:>10,.0f}  {app_rate / raw_rate:5.0%}")


if __name__ == "__main__":
    main()
