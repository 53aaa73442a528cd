"""The ingest gateway's rates on the real local stack, each beside a baseline from the same run.

1. HTTP: 4 concurrent clients POST counter increments in JSON batches of 500 to /v1/ops; ops/s
   from the first request to the last 200 (every operation on ingress, acks=all). Beside it: the
   SDK producing the same operations (same objects, batches of 500) until flush() returns.
2. MQTT: QoS 1 telemetry messages published (paho, many in flight) to telemetry/<id>; msgs/s from
   the first publish until the gateway reports them all written to ingress (its
   jarvis_ingest_mqtt_messages_total). Beside it: Mosquitto's own publish -> subscribe rate for the
   same messages (a QoS 1 subscriber on another topic).
Only the ingest worker of eu runs during the measurements (the other workers would fold and verify
on the same 2 cores); they are started again afterwards. Run `jarvis stack up` first.
Targets (issue 18): HTTP >= 50% of the SDK; MQTT >= 50% of Mosquitto's pub -> sub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
import uuid

import aiohttp
import paho.mqtt.client as mqtt

from benchmarks.stack_check import require_stack
from connectors import api_client, http_tls
from connectors.sdk import Client
from jarvis.config import settings
from jarvis.roles import web_port
from jarvis.security.key_store import FileAuthStore
from jarvis.stack import mosquitto
from jarvis.stack.workers import worker_procs

REGION = "eu"
CLIENTS = 4
BATCH = 500


async def _http_rate(url: str, key: str, ids: list[str], n: int, latencies: list[float]) -> float:
    bodies = []
    for start in range(0, n, BATCH):
        ops = [{"object_id": ids[i % len(ids)], "kind": "increment", "args": {"n": 1}} for i in range(start, min(n, start + BATCH))]
        bodies.append(json.dumps(ops).encode())
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            while True:
                t = time.perf_counter()
                async with session.post(url + "/v1/ops", data=body, headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        latencies.append(time.perf_counter() - t)
                        break
                    if r.status != 503:
                        raise SystemExit(f"gateway answered {r.status}: {await r.text()}")
                await asyncio.sleep(0.05)

    connector = aiohttp.TCPConnector(ssl=http_tls.client_context(settings()) or True)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        return n / (time.perf_counter() - t0)


def http_rate(url: str, key: str, ids: list[str], n: int, latencies: list[float]) -> float:
    return asyncio.run(_http_rate(url, key, ids, n, latencies))


def sdk_rate(ids: list[str], n: int) -> float:
    c = Client(region=REGION, node_id="bench-ingest-sdk", batch_size=BATCH, linger_ms=5, dev_trust=True)
    handles = [c.counter(o) for o in ids]
    t0 = time.perf_counter()
    for i in range(n):
        handles[i % len(handles)].increment(1)
    c.flush(timeout=300)
    return n / (time.perf_counter() - t0)


def _mqtt_client(cid: str, password: str, port: int) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True)
    c.username_pw_set(mosquitto.BRIDGE_USER, password)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _publish_all(c: mqtt.Client, topic_of: list[str], payloads: list[bytes]) -> None:
    infos = [c.publish(t, p, qos=1) for t, p in zip(topic_of, payloads, strict=True)]
    for info in infos:
        info.wait_for_publish(120)


def gateway_written(url: str) -> float:
    text = api_client.urlopen(url + "/metrics", 5).read().decode()
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith("jarvis_ingest_mqtt_messages_total{") and 'outcome="written"' in ln)  # fmt: skip


def mqtt_rates(url: str, password: str, port: int, m: int) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:6]
    payloads = [json.dumps({"ts": 1732520000.0 + i * 0.001, "value": float(i % 100)}).encode() for i in range(m)]
    # Baseline: Mosquitto alone, publish -> a QoS 1 subscriber.
    got = 0
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        got += 1
        if got >= m:
            done.set()

    sub = _mqtt_client(f"bench-sub-{tag}", password, port)
    sub.on_message = on_message
    sub.subscribe(f"bench/{tag}/#", qos=1)
    time.sleep(0.5)
    pub = _mqtt_client(f"bench-pub-{tag}", password, port)
    t0 = time.perf_counter()
    _publish_all(pub, [f"bench/{tag}/s{i % 20}" for i in range(m)], payloads)
    done.wait(300)
    base = m / (time.perf_counter() - t0)
    sub.loop_stop()
    sub.disconnect()
    # The gateway: publish -> written to ingress.
    before = gateway_written(url)
    t0 = time.perf_counter()
    _publish_all(pub, [f"telemetry/quality:bench-{tag}-{i % 20}" for i in range(m)], payloads)
    deadline = time.monotonic() + 300
    while gateway_written(url) - before < m and time.monotonic() < deadline:
        time.sleep(0.02)
    gw = m / (time.perf_counter() - t0)
    pub.loop_stop()
    pub.disconnect()
    return gw, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int, default=None, help="HTTP/SDK operations (default 200,000; --quick 40,000)")
    ap.add_argument("-m", type=int, default=None, help="MQTT messages (default 50,000; --quick 10,000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=("http", "mqtt"), help="measure one protocol (beside its own baseline)")
    args = ap.parse_args()
    n = args.n or (40_000 if args.quick else 200_000)
    m = args.m or (10_000 if args.quick else 50_000)
    rounds = 1 if args.quick else args.rounds
    s = settings()
    require_stack(s)
    key, record = FileAuthStore(s.home).create_key("admin", f"bench-{uuid.uuid4().hex[:6]}")
    url = s.http_url(web_port(s, "ingest", REGION))
    port = s.region_config(REGION).mqtt_port
    stopped = [p for p in worker_procs(s) if p.running() and p.name != f"worker-ingest-{REGION}"]
    for p in stopped:
        p.stop()
    try:
        ids = [f"ctr:ingest-bench-{uuid.uuid4().hex[:6]}-{i}" for i in range(1000)]
        https, sdks, gws, bases = [], [], [], []
        latencies: list[float] = []
        for _ in range(rounds):
            if args.only != "mqtt":
                https.append(http_rate(url, key, ids, n, latencies))
                sdks.append(sdk_rate(ids, n))
            if args.only != "http":
                g, b = mqtt_rates(url, mosquitto.bridge_secret(s), port, m)
                gws.append(g)
                bases.append(b)
    finally:
        for p in stopped:
            p.start()
        FileAuthStore(s.home).revoke(record.key_id)
    print(f"{'ingest (only the eu ingest worker running)':<60}{'rate':>12}")
    if https:
        h, k = statistics.median(https), statistics.median(sdks)
        print(f"{f'HTTP: {CLIENTS} clients, JSON batches of {BATCH}, ops/s to ingress':<60}{h:>12,.0f}")
        print(f"{'SDK, the same operations, ops/s':<60}{k:>12,.0f}")
        print(f"{'HTTP / SDK':<60}{h / k:>12.1%}")
        q = statistics.quantiles(latencies, n=100)
        print(f"{'  HTTP request -> 200, ms p50 / p99':<60}{f'{q[49] * 1e3:.1f} / {q[98] * 1e3:.1f}':>12}")
    if gws:
        g, b = statistics.median(gws), statistics.median(bases)
        print(f"{'MQTT QoS 1 telemetry, msgs/s publish -> on ingress':<60}{g:>12,.0f}")
        print(f"{'Mosquitto alone, publish -> QoS 1 subscriber, msgs/s':<60}{b:>12,.0f}")
        print(f"{'MQTT gateway / Mosquitto':<60}{g / b:>12.1%}")
    if rounds > 1 and https:
        print("  rounds HTTP/SDK: " + "; ".join(f"{a:,.0f}/{c:,.0f}" for a, c in zip(https, sdks, strict=True)))
    if rounds > 1 and gws:
        print("  rounds MQTT/Mosquitto: " + "; ".join(f"{d:,.0f}/{e:,.0f}" for d, e in zip(gws, bases, strict=True)))
    print("targets: HTTP >= 50% of the SDK; MQTT >= 50% of Mosquitto's publish -> subscribe")


if __name__ == "__main__":
    main()
