"""bcounter, text and map on the real stack, two regions: reservations never oversell and rights
move to where the demand is; text and maps edited in both regions converge; bad input is refused
with its reason and leaves the object unchanged."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.sdk import Client, RejectedError
from jarvis.crdt.text import decode_state_vector
from tests.integration.pipeline_helpers import get_json, object_url, wait_until

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")


def urls(stack: Any) -> dict[str, str]:
    return {r: stack.settings.region_config(r).query_url for r in stack.settings.region_names}


def view(stack: Any, region: str, object_id: str) -> dict[str, Any] | None:
    status, body = get_json(object_url(urls(stack)[region], object_id), timeout=2.0)
    return body if status == 200 else None


def value(stack: Any, region: str, object_id: str) -> Any:
    v = view(stack, region, object_id)
    return None if v is None else v["value"]


def clients(tag: str, regions: tuple[str, ...] = REGIONS) -> dict[str, Client]:
    return {r: Client(region=r, node_id=f"{tag}-{r}", track_verdicts=True, linger_ms=1, dev_trust=True) for r in regions}


def stocked(stack: Any, cs: dict[str, Client], stock: int) -> str:
    oid = f"bc:sku-{uuid.uuid4().hex[:8]}"
    cs["eu"].bcounter(oid).increment(stock)
    cs["eu"].flush(wait=True)
    assert wait_until(
        lambda: all((value(stack, r, oid) or {}).get("value") == stock for r in cs), 30, 0.1
    ), f"stock of {stock} not seen in every region"
    return oid


def reserve(
    stack: Any, stock: int, per_region: int, pause_mm_s: float = 0.0, regions: tuple[str, ...] = REGIONS
) -> tuple[dict[str, Client], str, dict[str, int], list[int], dict[str, Any]]:
    cs = clients("shop", regions)
    oid = stocked(stack, cs, stock)
    accepted = {r: 0 for r in regions}
    reads: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for r in regions:
                v = value(stack, r, oid)
                if v is not None:
                    reads.append(v["value"])
            time.sleep(0.02)

    def shop(r: str) -> None:
        h = cs[r].bcounter(oid)
        for i in range(per_region):
            h.decrement(1)
            if i % 25 == 24:
                cs[r].flush()
                time.sleep(0.05)  # ~500 reservations/s per region: demand that lasts a few seconds
        report = cs[r].verdicts(120)
        accepted[r] = len(report.accepted)

    watcher = threading.Thread(target=reader)
    watcher.start()
    shops = [threading.Thread(target=shop, args=(r,)) for r in regions]
    for t in shops:
        t.start()
    mm = stack.mm2()
    if pause_mm_s:
        time.sleep(1.0)
        os.kill(mm.pid(), signal.SIGSTOP)  # MirrorMaker frozen: each region sells only what it holds
        time.sleep(pause_mm_s)
        os.kill(mm.pid(), signal.SIGCONT)
    for t in shops:
        t.join()
    stop.set()
    watcher.join()
    return cs, oid, accepted, reads, {}


def settle_and_sell_out(stack: Any, cs: dict[str, Client], oid: str, accepted: dict[str, int]) -> int:
    """Demand beyond the stock: keep reserving from both regions until nothing is left (rights that
    reached a region after its own demand ended are sold there). Returns the extra reservations."""
    extra = 0
    for _ in range(30):
        if all((value(stack, r, oid) or {}).get("value") == 0 for r in cs):
            break
        for r in cs:
            h = cs[r].bcounter(oid)
            for _ in range(5):
                h.decrement(1)
            extra += 5
            accepted[r] += len(cs[r].verdicts(60).accepted)
        time.sleep(0.3)
    return extra


def check_never_oversold(
    stack: Any, oid: str, stock: int, accepted: dict[str, int], reads: list[int]
) -> None:
    assert reads and min(reads) >= 0, f"a region showed {min(reads)}"
    assert wait_until(lambda: len({str(value(stack, r, oid)) for r in accepted}) == 1, 30, 0.2), {
        r: value(stack, r, oid) for r in accepted
    }
    final = value(stack, "eu", oid)["value"]
    assert sum(accepted.values()) == stock - final <= stock, (accepted, final)
    assert final == 0, f"{final} units left unsold while both regions wanted them"


# The accepted counts are the SDK's verdicts (the origin fold's decisions on jarvis.ops.decided):
# they once over-reported under load (1,375 for 1,000 sold) while the bound held; now they must equal
# what the counter sold. Slow: a long scenario, run by `make test-slow`.
@pytest.mark.slow
def test_3000_reservations_from_both_regions_never_oversell_and_sell_all_1000(stack: Any) -> None:
    cs, oid, accepted, reads, _ = reserve(stack, 1000, 1500)
    extra = settle_and_sell_out(stack, cs, oid, accepted)
    check_never_oversold(stack, oid, 1000, accepted, reads)
    print(f"\naccepted eu {accepted['eu']} us {accepted['us']}; extra demand after the burst: {extra}")
    assert accepted["us"] > 0  # us sold stock that eu had created: rights moved


@pytest.mark.slow
def test_reservations_with_mirrormaker_paused_for_20_s_never_oversell(stack: Any) -> None:
    cs, oid, accepted, reads, _ = reserve(stack, 1000, 1500, pause_mm_s=20)
    settle_and_sell_out(stack, cs, oid, accepted)
    check_never_oversold(stack, oid, 1000, accepted, reads)


@pytest.mark.slow
def test_three_regions_reserve_one_sku_never_oversell_and_sell_it_all(stack: Any) -> None:
    """JARVIS_REGIONS=eu,us,ap: stock created in eu, demand from all three at once; the rights reach
    us and ap from eu (and from each other), and the three agree after."""
    regions = tuple(stack.settings.region_names)
    if len(regions) < 3:
        pytest.skip("needs a stack of three regions (JARVIS_REGIONS=eu,us,ap)")
    cs, oid, accepted, reads, _ = reserve(stack, 600, 400, regions=regions)
    settle_and_sell_out(stack, cs, oid, accepted)
    check_never_oversold(stack, oid, 600, accepted, reads)
    print(f"\naccepted {accepted}")
    assert all(accepted[r] > 0 for r in regions if r != "eu"), accepted  # rights moved to every region


def test_reservation_latency_holding_rights_and_getting_them(stack: Any) -> None:
    cs = clients("lat")
    oid = stocked(stack, cs, 200)

    def sold(region: str, before: int) -> float:
        t0 = time.perf_counter()
        cs[region].bcounter(oid).decrement(1)
        cs[region].flush()
        wait_until(lambda: (value(stack, region, oid) or {}).get("value", before) < before, 10, 0.002)
        return (time.perf_counter() - t0) * 1000

    holding = []
    for _ in range(40):
        before = value(stack, "eu", oid)["value"]
        holding.append(sold("eu", before))
    cs["eu"].verdicts(30)
    # us holds no rights: its first reservation is refused, asks, and eu's transfer arrives.
    getting = []
    for _ in range(3):
        oid = stocked(stack, cs, 50)
        t0 = time.perf_counter()
        h = cs["us"].bcounter(oid)
        while True:
            v = h.decrement(1, wait=True)
            if v.ok:
                break
            assert "insufficient rights in us" in " ".join(v.reasons)
            assert time.perf_counter() - t0 < 10, "no rights reached us in 10 s"
        getting.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(holding, n=100)
    print(
        f"\nreservation holding rights: p50 {statistics.median(holding):.1f} ms p99 {q[98]:.1f} ms; "
        f"getting rights first (verdict round trips): {', '.join(f'{g:.0f}' for g in getting)} ms"
    )
    assert statistics.median(holding) < 200
    assert max(getting) < 5000


def test_text_edited_in_both_regions_converges(stack: Any) -> None:
    cs = clients("ed")
    oid = f"txt:doc-{uuid.uuid4().hex[:8]}"
    cs["eu"].text(oid).insert(0, "hello")
    cs["eu"].flush(wait=True)
    assert wait_until(lambda: (value(stack, "us", oid) or {}).get("text") == "hello", 30, 0.1)
    eu, us = cs["eu"].text(oid), cs["us"].text(oid)
    eu.insert(5, " world")  # concurrent: neither has seen the other's edit
    us.insert(0, ">> ")
    us.delete(3, 1)  # "h" deleted in us
    for c in cs.values():
        c.flush(wait=True)

    def agree() -> bool:
        vs = [value(stack, r, oid) for r in REGIONS]
        return (
            all(vs)
            and vs[0]["text"] == vs[1]["text"]
            and decode_state_vector(base64.b64decode(vs[0]["state_vector"]))
            == decode_state_vector(base64.b64decode(vs[1]["state_vector"]))
        )

    assert wait_until(agree, 30, 0.1)
    assert value(stack, "eu", oid)["text"] == ">> ello world"


YJS_TOOL = Path(__file__).parents[1] / "interop" / "yjs" / "yjs_tool.js"


def yjs(apply: list[str], insert: tuple[int, str] | None = None) -> dict[str, Any]:
    """The reference implementation under node (tests/interop/yjs, installed from npm by make)."""
    req = json.dumps({"apply": apply, "insert": list(insert) if insert else None})
    out = subprocess.run(["node", str(YJS_TOOL)], input=req, capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


@pytest.mark.skipif(
    shutil.which("node") is None or not (YJS_TOOL.parent / "node_modules" / "yjs").is_dir(),
    reason="node's yjs is not installed (make install runs npm ci in tests/interop/yjs)",
)
def test_text_edited_through_pycrdt_in_eu_and_yjs_in_us_converges_and_replays_at_t(stack: Any) -> None:
    cs = clients("yjs")
    oid = f"txt:doc-{uuid.uuid4().hex[:8]}"
    cs["eu"].text(oid).insert(0, "shared doc")
    cs["eu"].flush(wait=True)
    assert wait_until(lambda: (value(stack, "us", oid) or {}).get("text") == "shared doc", 30, 0.1)
    time.sleep(0.05)
    t_base = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    base = value(stack, "us", oid)["update"]  # us's stored state, as yjs in us starts from it
    js = yjs([base], (len("shared doc"), " [js]"))
    cs["eu"].text(oid).insert(0, "[py] ")  # concurrent: neither has seen the other's edit
    cs["us"].text(oid).apply_update(base64.b64decode(js["update"]))
    for c in cs.values():
        c.flush(wait=True)
    assert wait_until(
        lambda: len({(value(stack, r, oid) or {}).get("text") for r in REGIONS}) == 1
        and (value(stack, "eu", oid) or {}).get("text", "").endswith(" [js]"), 30, 0.1
    ), {r: value(stack, r, oid) for r in REGIONS}  # fmt: skip
    text = value(stack, "eu", oid)["text"]
    assert text == "[py] shared doc [js]"
    assert yjs([value(stack, "us", oid)["update"]])["text"] == text  # the stored state loads in yjs
    at = urllib.parse.quote(t_base.isoformat())
    history = object_url(urls(stack)["eu"], oid) + f"/history?at={at}"

    def replayed() -> Any:
        status, body = get_json(history, timeout=30)
        return ((body or {}).get("value") or {}).get("text") if status == 200 else None

    assert wait_until(lambda: replayed() == "shared doc", 60, 0.5), replayed()  # the text at T
    now = urllib.parse.quote(dt.datetime.now(dt.UTC).isoformat())
    assert wait_until(
        lambda: ((get_json(object_url(urls(stack)["eu"], oid) + f"/history?at={now}", timeout=30)[1] or {})
                 .get("value") or {}).get("text") == text, 60, 0.5,
    )  # fmt: skip


def test_a_record_map_merges_field_by_field(stack: Any) -> None:
    cs = clients("ehr")
    oid = f"mp:patient-{uuid.uuid4().hex[:8]}"
    cs["eu"].map(oid).update("name", "register", "write", {"value": "Ada"})
    cs["us"].map(oid).update("blood", "register", "write", {"value": "O+"})
    cs["us"].map(oid).update("visits", "counter", "increment", {"n": 2})
    cs["eu"].map(oid).update("visits", "counter", "increment", {"n": 1})
    for c in cs.values():
        c.flush(wait=True)
    want = {"name": "Ada", "blood": "O+", "visits": 3}
    assert wait_until(
        lambda: all((value(stack, r, oid) or {}).get("entries") == want for r in REGIONS), 30, 0.1
    )
    cs["us"].map(oid).remove("blood")
    cs["us"].flush(wait=True)
    del want["blood"]
    assert wait_until(
        lambda: all((value(stack, r, oid) or {}).get("entries") == want for r in REGIONS), 30, 0.1
    )


def test_bad_input_is_refused_with_its_reason_and_the_object_is_unchanged(stack: Any) -> None:
    cs = clients("bad")
    c = cs["eu"]
    bc = stocked(stack, cs, 3)
    txt, mp = f"txt:bad-{uuid.uuid4().hex[:6]}", f"mp:bad-{uuid.uuid4().hex[:6]}"
    c.text(txt).insert(0, "ok")
    c.map(mp).update("k", "register", "write", {"value": 1})
    c.flush(wait=True)
    assert wait_until(
        lambda: value(stack, "eu", txt) is not None and value(stack, "eu", mp) is not None, 30, 0.1
    )
    before = {o: value(stack, "eu", o) for o in (bc, txt, mp)}
    full = c.text(txt).doc().copy().insert(2, "and more").update or b""
    ids = {
        "truncated": c.emit(
            txt, "text", "update", {"update": base64.b64encode(full[: len(full) // 2]).decode()}
        ),
        "nested": c.emit(mp, "map", "update", {"key": "k", "type": "tree", "kind": "add", "args": {}}),
        "beyond": c.bcounter(bc).transfer(5, "us"),
        "negative": c.emit(bc, "bcounter", "decrement", {"n": -1}),
        "fraction": c.emit(bc, "bcounter", "decrement", {"n": 0.5}),
        "short": c.bcounter(bc).decrement(4),
    }
    with pytest.raises(RejectedError) as err:
        c.flush(wait=True)
    reasons = {k: " ".join(err.value.report.of(op).reasons) for k, op in ids.items()}
    assert "not a Yrs v1 update" in reasons["truncated"], reasons
    assert "unknown nested type 'tree'" in reasons["nested"]
    assert "transfer of 5 exceeds the 3 rights eu holds" in reasons["beyond"]
    assert "decrement amount must be a non-negative integer, got -1" in reasons["negative"]
    assert "decrement amount must be a non-negative integer, got 0.5" in reasons["fraction"]
    assert "insufficient rights in eu: holds 3, needs 4" in reasons["short"]
    time.sleep(1.0)
    after = {o: value(stack, "eu", o) for o in (bc, txt, mp)}
    assert after[txt] == before[txt] and after[mp] == before[mp]
    assert after[bc]["value"] == before[bc]["value"] == 3
