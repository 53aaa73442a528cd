"""The use-case apps (pipelines/apps) on the real two-region stack, each judged by its business
outcome against a model the test keeps itself from what it sent (never from the app's own reads)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from connectors.api_client import api_key, get_json
from connectors.kafka_io import tail_consumer
from connectors.sdk import RejectedError
from jarvis import topics
from jarvis.security.crypto import DataKeyring
from pipelines.apps._client import client, clinical_client, clinical_key, local_api_key, mqtt_device
from pipelines.apps._common import AppError
from pipelines.apps.cms import Editor
from pipelines.apps.ehr import EHR, HIDDEN, record_id
from pipelines.apps.eventsourcing import EventStore, events_id
from pipelines.apps.factory import Factory, production_id, quality_id
from pipelines.apps.inventory import Store, reservations_id, stock_id
from pipelines.apps.mesh import Mesh
from pipelines.apps.ratelimit import RateLimiter, counter_id
from pipelines.apps.trading import RiskWatcher, TradingDesk, position_id, risk_id, trades_id
from tests.integration.pipeline_helpers import object_url, read_value, wait_until

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def val(stack: Any, region: str, object_id: str) -> Any:
    return read_value(stack.settings.region_config(region).query_url, object_id)


def both(fn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda r=r: out.__setitem__(r, fn(r))) for r in REGIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_trading_positions_and_trade_records_agree_in_both_regions_after_concurrent_trading(
    stack: Any,
) -> None:
    account = f"desk-{uuid.uuid4().hex[:8]}"
    desks = {r: TradingDesk(client(r, f"trader-{r}"), account) for r in REGIONS}
    symbols = ["ACME", "GLOBEX"]

    def trade(r: str) -> list[tuple[str, str, int]]:
        sent = []
        for i in range(200):
            sym, qty = symbols[i % 2], (i % 7 + 1) * (1 if (i + len(r)) % 3 else -1)
            t = desks[r].execute_trade(sym, qty, 100.0 + i % 5)
            sent.append((t.trade_id, sym, qty))
        desks[r].flush()
        return sent

    sent = [x for xs in both(trade).values() for x in xs]
    model_pos = Counter()
    for _, sym, qty in sent:
        model_pos[sym] += qty
    model_ids = sorted(tid for tid, _, _ in sent)

    def agrees(r: str) -> bool:
        records = val(stack, r, trades_id(account)) or []
        return sorted(x["trade_id"] for x in records) == model_ids and all(
            val(stack, r, position_id(account, s)) == model_pos[s] for s in symbols
        )

    assert wait_until(lambda: all(agrees(r) for r in REGIONS), 60), {
        r: (
            {s: val(stack, r, position_id(account, s)) for s in symbols},
            len(val(stack, r, trades_id(account)) or []),
        )
        for r in REGIONS
    }
    assert sorted(val(stack, "eu", trades_id(account)), key=str) == sorted(
        val(stack, "us", trades_id(account)), key=str
    )
    # An exposure above its limit raises an alert that the other region reads too.
    report = desks["us"].update_risk_metrics(prices={"ACME": 100.0, "GLOBEX": 100.0}, limits={"ACME": 1.0})
    assert any(a.startswith("ACME: exposure") for a in report.alerts) == (model_pos["ACME"] != 0)
    assert wait_until(
        lambda: (val(stack, "eu", risk_id(account)) or {}).get("alerts") == report.alerts, 20, 0.05
    )


def test_an_exposure_over_its_limit_raises_a_risk_alert_that_both_regions_read(stack: Any) -> None:
    """A trade in us takes the desk's exposure over its limit; the risk watcher of eu, which knows
    only what has replicated, raises the alert, and us reads it back (the seed's reaction, timed)."""
    account = f"risk-{uuid.uuid4().hex[:8]}"
    watched = TradingDesk(client("eu", "risk-watcher-eu"), account)
    trader = TradingDesk(client("us", "trader-us"), account)
    trader.execute_trade("ACME", 1, 100.0)  # exposure 100, under the limit of 500
    trader.flush()
    assert wait_until(lambda: watched.position("ACME") == 1, 30, 0.05)
    watcher = RiskWatcher(watched, limits={"ACME": 500.0}, interval_s=0.05).start()
    try:
        quiet = both(lambda r: wait_until(lambda: (val(stack, r, risk_id(account)) or {}).get("alerts") == [], 20, 0.05))
        assert all(quiet.values()), "the first report (no alert) never reached both regions"

        def alerted(r: str) -> bool:
            return any(a.startswith("ACME: exposure 1000.00 above limit 500.00")
                       for a in (val(stack, r, risk_id(account)) or {}).get("alerts", []))  # fmt: skip

        t0 = time.monotonic()
        trader.execute_trade("ACME", 9, 100.0)
        trader.flush()
        seen = both(lambda r: wait_until(lambda: alerted(r), 20, 0.01) and time.monotonic() - t0)
    finally:
        watcher.stop()
    assert all(seen.values()), seen
    print(f"\nrisk alert read after the trade's flush: eu {seen['eu']:.2f} s, us {seen['us']:.2f} s")
    assert watched.risk()["exposures"] == {"ACME": 1000.0}


def test_inventory_is_never_oversold_under_concurrent_reservations_from_both_regions(stack: Any) -> None:
    sku, stock = f"sku-{uuid.uuid4().hex[:8]}", 40
    stores = {r: Store(client(r, f"shop-{r}", track_verdicts=True)) for r in REGIONS}
    stores["eu"].restock(sku, stock)
    assert wait_until(lambda: (val(stack, "us", stock_id(sku)) or {}).get("value") == stock, 30, 0.1)
    lows: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for r in REGIONS:
                v = val(stack, r, stock_id(sku))
                if v is not None:
                    lows.append(v["value"])
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    results = both(
        lambda r: [stores[r].reserve_inventory(sku, 1, f"c-{r}-{i}", f"wh-{r}") for i in range(35)]
    )
    stop.set()
    watcher.join()
    accepted = sorted(x.reservation_id for xs in results.values() for x in xs if x.accepted)
    refused = [x for xs in results.values() for x in xs if not x.accepted]
    assert all("insufficient rights" in " ".join(x.reasons) for x in refused), refused[:3]
    assert len(accepted) <= stock
    assert lows and min(lows) >= 0, f"stock read {min(lows)} in some region"
    assert wait_until(
        lambda: all(
            (val(stack, r, stock_id(sku)) or {}).get("value") == stock - len(accepted)
            and sorted(x["reservation_id"] for x in val(stack, r, reservations_id(sku)) or []) == accepted
            for r in REGIONS
        ),
        30,
    ), ({r: val(stack, r, stock_id(sku)) for r in REGIONS}, len(accepted))
    print(f"\naccepted {len(accepted)} of 70 for a stock of {stock}: "
          + ", ".join(f"{r} {sum(x.accepted for x in results[r])}" for r in REGIONS))  # fmt: skip


WRITER = """
import sys
from connectors.api_client import api_key, get_json
from connectors.sdk import RejectedError
from pipelines.apps._client import client, clinical_client, clinical_key, local_api_key, mqtt_device
from pipelines.apps.eventsourcing import EventStore
es = EventStore(client("eu", "es-killed-writer"), sync=True)
for i in range(100000):
    print(es.append_event(sys.argv[1], "tick", {"i": i}).version, flush=True)
"""


def test_an_aggregates_events_come_back_in_version_order_with_none_lost_through_a_writer_kill(
    stack: Any,
) -> None:
    agg = f"agg-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": ROOT}
    killed = subprocess.Popen([sys.executable, "-c", WRITER, agg], stdout=subprocess.PIPE, text=True, env=env)
    stores = {r: EventStore(client(r, f"es-{r}"), sync=False) for r in REGIONS}

    def append(r: str) -> list[str]:
        out = [stores[r].append_event(agg, "deposited", {"n": i}).version for i in range(150)]
        stores[r].flush()
        return out

    sent = both(append)
    acked: list[str] = []
    assert killed.stdout is not None
    while len(acked) < 60:
        line = killed.stdout.readline()
        assert line, "the writer ended before 60 appends"
        acked.append(line.strip())
    killed.send_signal(signal.SIGKILL)  # mid-stream: whatever it printed was acknowledged by Kafka
    killed.wait()
    sent["killed"] = acked
    everything = {v for vs in sent.values() for v in vs}

    def got(r: str) -> list[str]:
        return [e.version for e in stores[r].get_events_for_aggregate(agg)]

    # Every acknowledged event in both regions, and the regions agree (the killed writer may have
    # sent a few it never saw acknowledged: they count as its, and arrive in both regions or neither).
    def agreed() -> bool:
        eu, us = got("eu"), got("us")
        return everything <= set(eu) and everything <= set(us) and eu == us

    # The killed writer's last sends may still be on their way (to one region first): agreement
    # must hold twice, 3 s apart, before the order is compared.
    assert wait_until(lambda: agreed() and (time.sleep(3) or agreed()), 90), {
        r: len(everything - set(got(r))) for r in REGIONS
    }
    eu, us = got("eu"), got("us")
    assert eu == us, "the regions order the aggregate's events differently"
    assert eu == sorted(eu) and len(set(eu)) == len(eu), "versions are not unique and ascending"
    for writer, versions in sent.items():
        mine = set(versions)
        assert [v for v in eu if v in mine] == versions, f"{writer}'s events are not in its append order"
    mid = eu[len(eu) // 2]
    assert [e.version for e in stores["us"].get_events_for_aggregate(agg, mid)] == eu[len(eu) // 2 :]
    # Causal order: an event appended after reading every other sorts after them all.
    stores["us"].get_events_for_aggregate(agg)
    last = EventStore(stores["us"].client).append_event(agg, "closed", {})
    assert last.version > eu[-1]
    assert wait_until(lambda: got("eu")[-1:] == [last.version], 30)
    extra = {e["version"] for e in val(stack, "eu", events_id(agg))} - everything - {last.version}
    assert all(".es-killed-writer." in v for v in extra), extra  # nothing appeared that nobody sent


def test_a_breaker_opens_in_both_regions_once_failures_from_both_reach_the_threshold(stack: Any) -> None:
    svc = f"svc-{uuid.uuid4().hex[:8]}"
    meshes = {r: Mesh(client(r, f"mesh-{r}")) for r in REGIONS}
    meshes["eu"].register_service(svc, "http://svc:8080", threshold=5)
    assert wait_until(lambda: meshes["us"].lookup(svc) is not None, 20, 0.05)
    meshes["eu"].update_circuit_breaker(svc, 3)
    meshes["us"].update_circuit_breaker(svc, 1)
    assert wait_until(lambda: all(meshes[r].breaker_state(svc).failures == 4 for r in REGIONS), 20, 0.05)
    assert not any(meshes[r].breaker_state(svc).open for r in REGIONS)  # below the threshold: closed
    t0 = time.monotonic()
    meshes["us"].update_circuit_breaker(svc, 1)
    opened = both(
        lambda r: wait_until(lambda: meshes[r].breaker_state(svc).open, 20, 0.01) and time.monotonic() - t0
    )
    assert all(opened.values()), opened
    print(f"\nbreaker open after the 5th failure: eu {opened['eu']:.2f} s, us {opened['us']:.2f} s")
    meshes["eu"].reset_circuit_breaker(svc)
    assert wait_until(lambda: not meshes["us"].breaker_state(svc).open, 20, 0.05)


STALENESS_S = 1.5  # stated: flush 20 ms + replication (verifier, MirrorMaker 2, fold) + refresh 50 ms


def test_the_global_rate_limit_holds_within_its_slack_under_two_gateways(stack: Any) -> None:
    cid, limit, t = f"cust-{uuid.uuid4().hex[:8]}", 200, time.time()
    gws = {
        r: RateLimiter(client(r, f"gw-{r}"), r, list(REGIONS), limit, 3600, clock=lambda: t) for r in REGIONS
    }

    def serve(r: str) -> tuple[int, float]:
        admitted, t0 = 0, time.monotonic()
        for _ in range(450):  # ~150 requests/s for 3 s: more than the whole limit from each gateway
            admitted += gws[r].check_rate_limit(cid, "orders").allowed
            time.sleep(1 / 150)
        gws[r].close()
        return admitted, 450 / (time.monotonic() - t0)

    out = both(serve)
    total = sum(a for a, _ in out.values())
    slack = {r: out[o][1] * STALENESS_S for r in REGIONS for o in REGIONS if o != r}
    print(f"\nadmitted {total} for a limit of {limit} (eu {out['eu'][0]}, us {out['us'][0]}); "
          f"overshoot {total - limit}; stated slack {max(slack.values()):.0f}")  # fmt: skip
    assert limit <= total <= limit + max(slack.values())
    # What the gateways admitted is what the counters hold, in both regions.
    window = int(t // 3600)
    assert wait_until(
        lambda: all(sum(val(stack, r, counter_id(cid, "orders", window, g)) or 0 for g in REGIONS) == total
                    for r in REGIONS), 30,
    )  # fmt: skip


def test_factory_totals_equal_what_the_devices_published_over_mqtt_through_an_ingest_worker_kill(
    stack: Any,
) -> None:
    run = uuid.uuid4().hex[:8]
    gws = {r: Factory(*mqtt_device(r, f"fac-{r}-{run}")) for r in REGIONS}
    lines = [f"line-{run}-a", f"line-{run}-b"]
    produced: Counter[str] = Counter()
    points: Counter[str] = Counter()
    base = 1732700000.0

    def publish(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            r, ln = REGIONS[i % 2], lines[(i // 2) % 2]
            produced[ln] += 1 + i % 5
            points[ln] += 1
            gws[r].process_iot_data(f"dev-{r}-{i % 3}", {"line": ln, "produced": 1 + i % 5, "quality": 80 + i % 20,
                                                          "status": "running", "ts": base + i})  # fmt: skip

    publish(0, 300)
    proc = next(p for p in stack.worker_procs() if p.name == "worker-ingest-eu")
    proc.kill9()  # the eu bridge dies holding unacknowledged messages: the broker keeps them
    publish(300, 600)
    proc.start()
    for g in gws.values():
        g.close()
    want = {ln: produced[ln] for ln in lines}

    def state(r: str) -> dict[str, tuple[int, int]]:
        return {
            ln: (val(stack, r, production_id(ln)) or 0, len(val(stack, r, quality_id(ln)) or []))
            for ln in lines
        }

    model = {ln: (want[ln], points[ln]) for ln in lines}
    assert wait_until(lambda: all(state(r) == model for r in REGIONS), 120), (
        {r: state(r) for r in REGIONS},
        model,
    )
    time.sleep(2)  # and nothing counted twice once the restarted bridge caught up
    assert all(state(r) == model for r in REGIONS)


def test_a_patient_record_merges_two_providers_fields_and_phi_is_never_plaintext_on_the_wire(
    stack: Any, tmp_path: Any
) -> None:
    patient = f"pt-{uuid.uuid4().hex[:8]}"
    oid = record_id(patient)
    wire = {  # each region's own verified operations and the other region's, as mirrored into it
        (r, t): tail_consumer(stack.settings.bootstrap(r), t)
        for r in REGIONS
        for t in (topics.OPS, *(f"{o}.{topics.OPS}" for o in REGIONS if o != r))
    }
    audit = {r: tail_consumer(stack.settings.bootstrap(r), topics.AUDIT) for r in REGIONS}
    ehrs = {r: EHR(clinical_client(r, f"clinic-{r}")) for r in REGIONS}
    clinical = clinical_key("ehr-test-reader")
    updates = {
        "eu": {"name": "Ada Lovelace", "allergies": ["penicillin"], "ward": "3B"},
        "us": {"diagnosis": "arrhythmia-x", "ward": "4C", "status": "admitted"},
    }
    both(lambda r: ehrs[r].update_patient_record(patient, updates[r], f"dr-{r}"))
    fields = {"name", "allergies", "ward", "diagnosis", "status"}

    def served(r: str) -> Any:  # the query API's answer to a clinical key, as it is on the wire
        return read_value(stack.settings.region_config(r).query_url, oid, key=clinical)

    assert wait_until(lambda: all(set((served(r) or {"entries": {}})["entries"]) == fields for r in REGIONS), 30)
    # The same field written by both: one value, the same in both regions (the later write wins).
    assert wait_until(lambda: ehrs["eu"].providers(patient) == ehrs["us"].providers(patient), 30)
    ward = ehrs["eu"].read_patient_record(patient)["ward"]
    assert ward in ("3B", "4C")
    secrets_ = [b"Ada Lovelace", b"penicillin", b"arrhythmia-x"]
    for r in REGIONS:
        # A clinical key reads the record; the data key opens its PHI.
        assert ehrs[r].read_patient_record(patient) == {"name": "Ada Lovelace", "allergies": ["penicillin"],
                                                        "ward": ward, "diagnosis": "arrhythmia-x", "status": "admitted"}  # fmt: skip
        assert ehrs[r].read_patient_record(patient, phi=False)["diagnosis"] == HIDDEN
        raw = json.dumps(served(r)).encode()
        assert not [s for s in secrets_ if s in raw], "the query API holds PHI in plaintext"
    with pytest.raises(AppError, match="no clinical data key"):
        EHR(ehrs["eu"].client, keyring=DataKeyring(tmp_path)).read_patient_record(patient)

    # Not clinical: a role granting '*', one granting ehr:* itself, and the admin key all get 403
    # with the reason, the same for a patient that does not exist (nothing leaks by the answer).
    star = local_api_key("ehr-test-star", "star", ["*"], ["*"])
    prefix = local_api_key("ehr-test-prefix", "prefix", ["ehr:*", "patient:*"], [])
    query = stack.settings.region_config("eu").query_url
    for key in (star, prefix, api_key(stack.settings)):
        for target in (oid, record_id(f"{patient}-never")):
            status, body = get_json(object_url(query, target), key=key)
            assert status == 403 and "a clinical role" in body["error"], (status, body)
        with pytest.raises(AppError, match="a clinical role"):
            EHR(client("eu", "ehr-test-outsider", api_key=key)).read_patient_record(patient)
    status, body = get_json(f"{query}/v1/objects?prefix=ehr:", key=star)
    assert status == 403 and "a clinical role" in body["error"]
    status, body = get_json(f"{query}/v1/objects?prefix=", key=star)
    assert status == 200 and not [o for o in body["objects"] if o["object_id"].startswith(("ehr:", "medical:"))]

    # Every granted read of the record is in the access audit of the region that served it.
    def audited(r: str) -> bool:
        msg = audit[r].poll(0.5)
        while msg is not None:
            if msg.error() is None:
                e = json.loads(msg.value())
                if e.get("kind") == "read" and oid in e.get("objects", []) and e.get("status") == 200:
                    reads[r].append(e)
            msg = audit[r].poll(0.1)
        return bool(reads[r])

    reads: dict[str, list[dict[str, Any]]] = {r: [] for r in REGIONS}
    assert wait_until(lambda: all(audited(r) for r in REGIONS), 30), reads
    assert all(e["principal"] and e["key_id"] and e["service"] == "query" for r in REGIONS for e in reads[r])
    for c in audit.values():
        c.close()

    # Writes: the verifier takes clinical objects only from a node granted them by name, not by `*`.
    outsider = client("eu", f"ehr-test-star-node-{patient}", track_verdicts=True)
    outsider.map(oid).update("ward", "register", "write", {"value": {"v": "9Z", "by": "intruder"}})
    with pytest.raises(RejectedError, match="clinical"):
        outsider.flush(wait=True)
    outsider.close()

    # On the wire: every record of jarvis.ops in both regions (local and mirrored) since the writes.
    # Each provider's operations are on its region's jarvis.ops and mirrored into the other's: at
    # least one batch per topic (the SDK may put a provider's two operations in one batch or two).
    for (r, topic), consumer in wire.items():
        seen, deadline = 0, time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            assert not [s for s in secrets_ if s in (msg.value() or b"")], f"plaintext PHI in {r} {topic}"
            seen += patient.encode() in (msg.value() or b"")
            if seen >= 1:
                break  # this provider's batch, seen in this region, sealed
        consumer.close()
        assert seen >= 1, f"{r}: none of the patient's batches seen on {topic}"
    assert ehrs["eu"].providers(patient)["ward"] != "intruder"


def test_two_editors_text_converges_with_presence_and_comments_shown_in_both_regions(stack: Any) -> None:
    doc = f"doc-{uuid.uuid4().hex[:8]}"
    eds = {"eu": Editor(client("eu", "editor-eu"), "ada"), "us": Editor(client("us", "editor-us"), "grace")}
    eds["eu"].edit_document(doc, "ada", {"insert": {"index": 0, "text": "hello"}})
    assert wait_until(lambda: eds["us"].document(doc) == "hello", 30, 0.05)
    assert eds["us"].sync(doc) == "hello"
    # Concurrent: neither has seen the other's edit.
    both(lambda r: eds[r].edit_document(doc, eds[r].user, {
        "eu": {"insert": {"index": 5, "text": " world"}},
        "us": {"delete": {"index": 0, "n": 1}},
    }[r]))  # fmt: skip
    eds["us"].edit_document(doc, "grace", {"insert": {"index": 0, "text": ">> "}})
    eds["eu"].comment(doc, "intro", "too short")
    eds["us"].comment(doc, "intro", "agreed")
    want = ">> ello world"  # every edit kept: the model is each editor's intent, merged
    assert wait_until(lambda: all(eds[r].document(doc) == want for r in REGIONS), 30), {
        r: eds[r].document(doc) for r in REGIONS
    }
    assert wait_until(lambda: all(eds[r].who_is_here(doc) == ["ada", "grace"] for r in REGIONS), 30)
    assert wait_until(
        lambda: all(sorted(c["text"] for c in eds[r].threads(doc).get("intro", [])) == ["agreed", "too short"]
                    for r in REGIONS), 30,
    )  # fmt: skip
    assert wait_until(lambda: all(len(eds[r].history(doc)) == 4 for r in REGIONS), 30)
    assert eds["eu"].sync(doc) == want  # the editor's own replica merged the others' edits
