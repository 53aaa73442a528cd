"""`jarvis demo <case>`: each use case end to end on the local stack, two regions, with a summary."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.apps import CASES
from pipelines.apps._client import client, clinical_client, local_api_key, mqtt_device
from pipelines.apps._common import AppError
from pipelines.apps.cms import Editor
from pipelines.apps.ehr import EHR
from pipelines.apps.eventsourcing import EventStore
from pipelines.apps.factory import Factory, production_id, quality_id
from pipelines.apps.inventory import Store
from pipelines.apps.mesh import Mesh
from pipelines.apps.ratelimit import RateLimiter
from pipelines.apps.trading import TradingDesk, positions_from_trades

REGIONS = ("eu", "us")


def _wait(check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.2) -> float | None:
    """Seconds until `check` held, or None if it never did within `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(interval)
    return None


def _both(fn: Callable[[str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda r=r: out.__setitem__(r, fn(r))) for r in REGIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _yes(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def trading(console: Console) -> bool:
    run = uuid.uuid4().hex[:6]
    desks = {r: TradingDesk(client(r, f"demo-trader-{r}"), account=f"desk-{run}") for r in REGIONS}
    symbols = ["ACME", "GLOBEX", "INITECH"]

    def trade(r: str) -> list[Any]:
        rng, done = random.Random(r), []
        for _ in range(300):
            done.append(desks[r].execute_trade(rng.choice(symbols), rng.choice([-1, 1]) * rng.randint(1, 50),
                                               round(rng.uniform(90, 110), 2)))  # fmt: skip
        desks[r].flush()
        return done

    sent = [t for ts in _both(trade).values() for t in ts]
    want = positions_from_trades(sent)
    waited = _wait(lambda: all(desks[r].positions(symbols) == {s: want.get(s, 0) for s in symbols}
                               and len(desks[r].trades()) == len(sent) for r in REGIONS))  # fmt: skip
    table = Table(title=f"600 trades from eu and us, same desk (converged in {waited or float('nan'):.1f} s)")
    for col in ("symbol", "position eu", "position us", "sum of trades sent", "agree"):
        table.add_column(col)
    pos = {r: desks[r].positions(symbols) for r in REGIONS}
    for s in symbols:
        table.add_row(s, str(pos["eu"][s]), str(pos["us"][s]), str(want.get(s, 0)),
                      _yes(pos["eu"][s] == pos["us"][s] == want.get(s, 0)))  # fmt: skip
    console.print(table)
    n = {r: len(desks[r].trades()) for r in REGIONS}
    console.print(f"trade records: eu {n['eu']}, us {n['us']}, sent {len(sent)}")
    report = desks["eu"].update_risk_metrics(limits={s: 2000.0 for s in symbols}, gross_limit=5000.0)
    seen = _wait(lambda: (desks["us"].risk() or {}).get("gross") == report.gross, 10, 0.05)
    console.print(
        f"risk (eu): gross {report.gross:.2f}, net {report.net:.2f}; seen in us after {seen or float('nan'):.2f} s"
    )
    for a in report.alerts:
        console.print(f"  [yellow]alert[/] {a}")
    return waited is not None and seen is not None


def inventory(console: Console) -> bool:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    stores = {r: Store(client(r, f"demo-shop-{r}", track_verdicts=True)) for r in REGIONS}
    stores["eu"].restock(sku, 40)
    stores["eu"].set_price(sku, 19.99)
    _wait(lambda: stores["us"].available(sku) == 40)

    def shop(r: str) -> list[Any]:
        return [stores[r].reserve_inventory(sku, 1, f"cust-{r}-{i}", f"wh-{r}") for i in range(30)]

    results = _both(shop)
    ok = {r: sum(x.accepted for x in results[r]) for r in REGIONS}
    _wait(lambda: stores["eu"].available(sku) == stores["us"].available(sku))
    left = {r: stores[r].available(sku) for r in REGIONS}
    first = next(x for rs in results.values() for x in rs if x.accepted)
    for st in ("picked", "shipped", "delivered"):
        stores["eu"].advance_order(first.reservation_id, st)
    illegal = stores["eu"].advance_order(first.reservation_id, "picked")
    table = Table(title=f"{sku}: 40 in stock, 60 reservations from eu and us")
    for col in ("region", "accepted", "refused", "left (read in region)"):
        table.add_column(col)
    for r in REGIONS:
        table.add_row(r, str(ok[r]), str(30 - ok[r]), str(left[r]))
    console.print(table)
    sold = sum(ok.values())
    oversold = "[red]YES[/]" if sold > 40 or min(left.values()) < 0 else "[green]no[/]"
    console.print(f"sold {sold} of 40, oversold: {oversold}; price seen in us: {stores['us'].price(sku)}")
    console.print(f"order {first.reservation_id}: {stores['eu'].order_state(first.reservation_id)}; "
                  f"delivered -> picked refused: {_yes(not illegal)}")  # fmt: skip
    return sold <= 40 and left["eu"] == left["us"] == 40 - sold


def eventsourcing(console: Console) -> bool:
    agg = f"account-{uuid.uuid4().hex[:6]}"
    stores = {r: EventStore(client(r, f"demo-es-{r}"), sync=False) for r in REGIONS}

    def append(r: str) -> list[Any]:
        out = [stores[r].append_event(agg, "deposited", {"amount": i, "region": r}) for i in range(200)]
        stores[r].flush()
        return out

    sent = _both(append)
    n = sum(len(v) for v in sent.values())
    waited = _wait(lambda: all(len(stores[r].get_events_for_aggregate(agg)) == n for r in REGIONS))
    got = {r: stores[r].get_events_for_aggregate(agg) for r in REGIONS}
    same = [e.version for e in got["eu"]] == [e.version for e in got["us"]]
    per_writer = all([e.version for e in got["eu"] if e.writer == f"demo-es-{r}"] == [e.version for e in sent[r]]
                     for r in REGIONS)  # fmt: skip
    mid = got["eu"][n // 2].version if got["eu"] else None
    balance, at = stores["us"].load(agg, lambda s, e: s + e.data["amount"], 0)
    table = Table(title=f"events:{agg}: 200 appended in each region concurrently")
    for col in ("check", "result"):
        table.add_column(col)
    table.add_row("events read in eu / us", f"{len(got['eu'])} / {len(got['us'])} (sent {n})")
    table.add_row("same order in both regions", _yes(same))
    table.add_row("each writer's events in its append order", _yes(per_writer))
    table.add_row("from the middle version", f"{len(stores['eu'].get_events_for_aggregate(agg, mid))} events")
    table.add_row("balance folded in us", f"{balance} (expected {2 * sum(range(200))})")
    console.print(table)
    return waited is not None and same and per_writer


def cms(console: Console) -> bool:
    doc = f"doc-{uuid.uuid4().hex[:6]}"
    eds = {
        "eu": Editor(client("eu", "demo-editor-eu"), "ada"),
        "us": Editor(client("us", "demo-editor-us"), "grace"),
    }
    eds["eu"].edit_document(doc, "ada", {"insert": {"index": 0, "text": "Release notes"}})
    _wait(lambda: eds["us"].document(doc) == "Release notes", 20, 0.05)
    eds["us"].sync(doc)
    _both(lambda r: [eds[r].edit_document(doc, eds[r].user, op) for op in {
        "eu": [{"insert": {"index": 13, "text": ": faster folds"}}],
        "us": [{"insert": {"index": 0, "text": "DRAFT: "}}, {"delete": {"index": 7, "n": 1}}, {"insert": {"index": 7, "text": "r"}}],
    }[r]])  # fmt: skip
    eds["eu"].comment(doc, "title", "shorter?")
    eds["us"].comment(doc, "title", "fine by me")
    waited = _wait(lambda: eds["eu"].document(doc) == eds["us"].document(doc)
                   and len(eds["eu"].threads(doc).get("title", [])) == 2 == len(eds["us"].threads(doc).get("title", [])))  # fmt: skip
    table = Table(
        title=f"article:{doc}: ada (eu) and grace (us) edit at once (merged in {waited or float('nan'):.1f} s)"
    )
    for col in ("region", "text", "editors here", "comments on 'title'", "changes"):
        table.add_column(col)
    for r in REGIONS:
        e = eds[r]
        table.add_row(r, repr(e.document(doc)), ", ".join(e.who_is_here(doc)),
                      " / ".join(f"{c['user']}: {c['text']}" for c in e.threads(doc).get("title", [])), str(len(e.history(doc))))  # fmt: skip
    console.print(table)
    return waited is not None and eds["eu"].who_is_here(doc) == ["ada", "grace"]


def ehr(console: Console) -> bool:
    patient = f"pt-{uuid.uuid4().hex[:6]}"
    providers = {r: EHR(clinical_client(r, f"demo-clinic-{r}")) for r in REGIONS}
    _both(lambda r: providers[r].update_patient_record(patient, {
        "eu": {"name": "Ada Lovelace", "allergies": ["penicillin"], "ward": "3B"},
        "us": {"diagnosis": "arrhythmia", "medications": ["bisoprolol"], "status": "admitted"},
    }[r], f"dr-{r}"))  # fmt: skip
    fields = {"name", "allergies", "ward", "diagnosis", "medications", "status"}
    waited = _wait(lambda: all(set(providers[r].read_patient_record(patient)) == fields for r in REGIONS))
    clinical = providers["us"].read_patient_record(patient)
    other = providers["eu"].read_patient_record(patient, phi=False)
    # A key whose role reads everything but is not clinical: refused, with the reason.
    reader = EHR(client("eu", "demo-ehr-reader", api_key=local_api_key("demo-reader", "demo", ["*"], [])))
    try:
        reader.read_patient_record(patient)
        refused = "[red]it was served the record[/]"
    except AppError as e:
        refused = f"[green]refused[/]: {e}"
    raw = json.dumps(providers["eu"].client.read(f"ehr:{patient}"))
    table = Table(
        title=f"ehr:{patient}: fields from dr-eu and dr-us (merged in {waited or float('nan'):.1f} s)"
    )
    for col in ("field", "written by", "clinical reader (us)", "without the data key (eu)"):
        table.add_column(col)
    by = providers["eu"].providers(patient)
    for f in sorted(fields):
        table.add_row(f, by.get(f, "-"), str(clinical.get(f)), str(other.get(f)))
    console.print(table)
    plain = [w for w in ("Ada Lovelace", "arrhythmia", "penicillin") if w in raw]
    console.print(f"PHI in the query API's answer: {'[red]' + ', '.join(plain) + '[/]' if plain else '[green]none[/]'}; "
                  f"audit trail entries: {len(providers['us'].audit_trail(patient))}")  # fmt: skip
    console.print(f"a non-clinical key reading '*': {refused}")
    return waited is not None and not plain and refused.startswith("[green]")


def factory(console: Console) -> bool:
    run = uuid.uuid4().hex[:6]
    gws = {r: Factory(*mqtt_device(r, f"demo-factory-{r}-{run}")) for r in REGIONS}
    readers = {r: client(r, f"demo-factory-reader-{r}") for r in REGIONS}
    lines = [f"line-{run}-a", f"line-{run}-b"]
    produced = {ln: 0 for ln in lines}
    t0 = time.time()
    for i in range(400):
        r, ln = REGIONS[i % 2], lines[i % 3 % 2]
        n = 1 + i % 4
        produced[ln] += n
        gws[r].process_iot_data(f"press-{r}-{i % 5}", {"line": ln, "produced": n, "quality": 90 + i % 9,
                                                        "status": "running", "ts": t0 + i / 100})  # fmt: skip
    for g in gws.values():
        g.close()

    def totals(r: str) -> dict[str, int]:
        return {ln: int(readers[r].value(production_id(ln)) or 0) for ln in lines}

    waited = _wait(lambda: all(totals(r) == produced for r in REGIONS), 60)
    table = Table(
        title=f"10 presses in eu and us, 400 reports over MQTT (converged in {waited or float('nan'):.1f} s)"
    )
    for col in ("line", "published", "total eu", "total us", "quality points eu", "agree"):
        table.add_column(col)
    for ln in lines:
        t = {r: totals(r)[ln] for r in REGIONS}
        q = len(readers["eu"].value(quality_id(ln)) or [])
        table.add_row(
            ln,
            str(produced[ln]),
            str(t["eu"]),
            str(t["us"]),
            str(q),
            _yes(t["eu"] == t["us"] == produced[ln]),
        )
    console.print(table)
    return waited is not None


def mesh(console: Console) -> bool:
    svc = f"payments-{uuid.uuid4().hex[:6]}"
    meshes = {r: Mesh(client(r, f"demo-mesh-{r}")) for r in REGIONS}
    meshes["eu"].register_service(svc, "http://payments.internal:8443", threshold=6)
    _wait(lambda: meshes["us"].lookup(svc) is not None, 10, 0.05)
    meshes["eu"].update_circuit_breaker(svc, 3)
    meshes["us"].update_circuit_breaker(svc, 2)
    time.sleep(1.0)
    before = {r: meshes[r].breaker_state(svc) for r in REGIONS}
    t0 = time.monotonic()
    meshes["us"].update_circuit_breaker(svc, 1)
    opened = _both(lambda r: _wait(lambda: meshes[r].breaker_state(svc).open, 10, 0.01))
    table = Table(title=f"breaker of {svc} (threshold 6): 3 failures in eu, 2 then 1 in us")
    for col in ("region", "before the 6th", "after", "opened after the 6th (s)"):
        table.add_column(col)
    for r in REGIONS:
        st = meshes[r].breaker_state(svc)
        table.add_row(r, f"{before[r].failures} closed" if not before[r].open else "open",
                      f"{st.failures} {'open' if st.open else 'closed'}",
                      f"{opened[r]:.2f}" if opened[r] is not None else "[red]never[/]")  # fmt: skip
    console.print(table)
    meshes["eu"].reset_circuit_breaker(svc)
    closed = _wait(lambda: not meshes["us"].breaker_state(svc).open, 10, 0.05)
    console.print(f"reset in eu -> closed in us after {closed or float('nan'):.2f} s (epoch "
                  f"{meshes['us'].breaker_state(svc).epoch}); {time.monotonic() - t0:.1f} s in all")  # fmt: skip
    return all(v is not None for v in opened.values()) and not any(b.open for b in before.values())


def ratelimit(console: Console) -> bool:
    cid, limit = f"cust-{uuid.uuid4().hex[:6]}", 300
    t = time.time()
    gws = {
        r: RateLimiter(client(r, f"demo-gw-{r}"), r, list(REGIONS), limit, 3600, clock=lambda: t)
        for r in REGIONS
    }

    def serve(r: str) -> tuple[int, float]:
        admitted, t0 = 0, time.monotonic()
        for _ in range(600):  # ~200 requests/s for 3 s: twice the limit from each gateway
            admitted += gws[r].check_rate_limit(cid, "orders").allowed
            time.sleep(0.005)
        gws[r].close()
        return admitted, 600 / (time.monotonic() - t0)

    out = _both(serve)
    total = sum(a for a, _ in out.values())
    table = Table(title=f"global limit {limit} for {cid} on /orders, 1,200 requests through two gateways")
    for col in ("gateway", "admitted", "offered req/s"):
        table.add_column(col)
    for r in REGIONS:
        table.add_row(r, str(out[r][0]), f"{out[r][1]:.0f}")
    console.print(table)
    console.print(f"admitted {total} of a limit of {limit}: overshoot {max(0, total - limit)} "
                  f"({max(0, total - limit) / limit:.0%}); stated slack: the other gateway's rate x ~1 s staleness")  # fmt: skip
    return total >= limit


DEMOS: dict[str, Callable[[Console], bool]] = {
    "trading": trading, "inventory": inventory, "eventsourcing": eventsourcing, "cms": cms, "ehr": ehr, "factory": factory, "mesh": mesh, "ratelimit": ratelimit,
}  # fmt: skip
assert set(DEMOS) == set(CASES)


def list_cases(console: Console) -> None:
    table = Table(title="use cases: jarvis demo <case>")
    for col in ("case", "CRDTs and why", "shows"):
        table.add_column(col)
    for c in CASES.values():
        table.add_row(c.name, c.crdts, c.summary)
    console.print(table)


def run(case: str, console: Console) -> bool:
    console.rule(f"[bold]{case}: {CASES[case].summary}")
    ok = DEMOS[case](console)
    console.print("[bold green]outcome holds[/]" if ok else "[bold red]outcome does not hold[/]")
    return ok
