"""The use-case apps' logic (pipelines/apps) against an independent model of the SDK's objects: a
naive in-memory client whose objects hold their values the obvious way (lists, sums, latest write),
sharing no code with jarvis.crdt. Cross-process behaviour is tests/integration/test_usecases.py."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import HLC
from jarvis.security.crypto import DataKeyring
from pipelines.apps import CASES
from pipelines.apps._common import AppError
from pipelines.apps.cms import Editor, parse_operation, present
from pipelines.apps.ehr import EHR, HIDDEN, seal, unseal
from pipelines.apps.eventsourcing import EventStore, in_order, make_version
from pipelines.apps.factory import messages
from pipelines.apps.inventory import Store, reserved_units
from pipelines.apps.mesh import Mesh, breaker_open
from pipelines.apps.ratelimit import RateLimiter, admit, counter_id, slack_bound
from pipelines.apps.trading import RiskWatcher, Trade, TradingDesk, positions_from_trades, risk_metrics
from pipelines.loader import pipelines


@dataclass
class _Verdict:
    ok: bool
    reasons: list[str] = field(default_factory=list)


class _Report:
    def __init__(self, refused: list[_Verdict]) -> None:
        self.refused = refused


class ModelClient:
    """Just enough of connectors.sdk.Client for the apps, each object modelled naively; every
    object id is checked against the real pipeline definitions (prefix and CRDT type)."""

    def __init__(self, region: str = "eu", node_id: str = "n1", track_verdicts: bool = True) -> None:
        self.region, self.node_id, self.track_verdicts = region, node_id, track_verdicts
        self.hlc = HLC(node_id)
        self.values: dict[str, Any] = {}
        self.sent = 0
        self.flushes = 0
        self._refused: list[_Verdict] = []

    def _check(self, oid: str, *types: str) -> None:
        rule = pipelines().rule_for(oid)
        assert rule is not None and rule.crdt_type in types, (oid, rule)
        self.sent += 1

    def counter(self, oid: str) -> Any:
        self._check(oid, "pncounter", "gcounter")
        c = self

        class H:
            def increment(self, n: int = 1) -> None:
                c.values[oid] = c.values.get(oid, 0) + n

            def decrement(self, n: int = 1) -> None:
                assert pipelines().rule_for(oid).crdt_type == "pncounter"
                c.values[oid] = c.values.get(oid, 0) - n

        return H()

    def gset(self, oid: str) -> Any:
        self._check(oid, "gset", "orset")
        c = self

        class H:
            def add(self, el: Any) -> None:
                els = c.values.setdefault(oid, [])
                if json.dumps(el, sort_keys=True) not in {json.dumps(e, sort_keys=True) for e in els}:
                    els.append(el)

        return H()

    orset = gset

    def register(self, oid: str) -> Any:
        self._check(oid, "lww")
        c = self

        class H:
            def write(self, value: Any) -> None:
                c.values[oid] = json.loads(json.dumps(value))

        return H()

    def timeseries(self, oid: str) -> Any:
        self._check(oid, "timeseries")
        c = self

        class H:
            def append_data_point(self, ts: float, value: float, metadata: dict | None = None) -> None:
                c.values.setdefault(oid, []).append({"timestamp": ts, "value": value, "metadata": metadata})

        return H()

    def bcounter(self, oid: str) -> Any:
        self._check(oid, "bcounter")
        c = self

        class H:
            def increment(self, n: int = 1) -> None:
                v = c.values.setdefault(oid, {"value": 0, "min": 0, "rights": {}})
                v["value"] += n

            def decrement(self, n: int = 1, *, wait: bool = False, timeout: float = 30.0) -> _Verdict:
                v = c.values.setdefault(oid, {"value": 0, "min": 0, "rights": {}})
                if v["value"] - n < 0:
                    return _Verdict(
                        False, [f"insufficient rights in {c.region}: holds {v['value']}, needs {n}"]
                    )
                v["value"] -= n
                return _Verdict(True)

        return H()

    def workflow(self, oid: str) -> Any:
        self._check(oid, "workflow")
        c = self
        wf = pipelines().rule_for(oid).workflow

        class H:
            def transition(self, to_state: str, **args: Any) -> None:
                v = c.values.setdefault(oid, {"state": wf.initial})
                if to_state in wf.transitions.get(v["state"], ()):
                    v["state"] = to_state
                else:
                    c._refused.append(_Verdict(False, ["not applied"]))

        return H()

    def verdicts(self, timeout: float = 30.0) -> _Report:
        r, self._refused = _Report(self._refused), []
        return r

    def read(self, oid: str) -> dict[str, Any] | None:
        return None if oid not in self.values else {"value": json.loads(json.dumps(self.values[oid]))}

    def flush(self, timeout: float = 30.0, *, wait: bool = False) -> None:
        self.flushes += 1


# -- trading ----------------------------------------------------------------------------------------
trades = st.lists(
    st.tuples(
        st.sampled_from(["ACME", "GLOBEX", "X"]), st.integers(-100, 100).filter(bool), st.floats(1, 500)
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(trades)
def test_positions_equal_the_sum_of_trades_and_match_the_trade_records(
    done: list[tuple[str, int, float]],
) -> None:
    c = ModelClient()
    desk = TradingDesk(c, "d1")
    for sym, qty, px in done:
        desk.execute_trade(sym, qty, px)
    model: dict[str, int] = {}
    for sym, qty, _ in done:
        model[sym] = model.get(sym, 0) + qty
    assert desk.positions() == model
    assert positions_from_trades(desk.trades()) == model
    assert len(desk.trades()) == len(done) and c.sent == 3 * len(done)
    for sym in model:
        assert desk.last_price(sym) == float([px for s, _, px in done if s == sym][-1])


@given(
    st.dictionaries(st.sampled_from("ABCD"), st.integers(-1000, 1000)),
    st.dictionaries(st.sampled_from("ABCD"), st.floats(0.01, 1000)),
    st.dictionaries(st.sampled_from("ABCD"), st.floats(0, 100_000)),
)
def test_risk_alerts_name_exactly_the_exposures_above_their_limit(
    pos: dict[str, int], px: dict[str, float], lim: dict[str, float]
) -> None:
    r = risk_metrics("d", pos, px, lim, gross_limit=50_000.0)
    model_exp = {s: abs(q) * px[s] for s, q in pos.items() if s in px}
    assert r.exposures == pytest.approx(model_exp)
    assert r.gross == pytest.approx(sum(model_exp.values()))
    over = {s for s, e in model_exp.items() if s in lim and e > lim[s]}
    unpriced = {s for s, q in pos.items() if s not in px and q}
    assert {a.split(":")[0] for a in r.alerts if not a.startswith("gross")} == over | unpriced
    assert any(a.startswith("gross") for a in r.alerts) == (sum(model_exp.values()) > 50_000.0)


def test_update_risk_metrics_publishes_the_report_with_its_alerts() -> None:
    c = ModelClient()
    desk = TradingDesk(c, "d1")
    desk.execute_trade("ACME", 30, 100.0)
    report = desk.update_risk_metrics(limits={"ACME": 2_000.0})
    assert report.alerts == ["ACME: exposure 3000.00 above limit 2000.00"]
    assert desk.risk()["alerts"] == report.alerts


@pytest.mark.parametrize(
    "args",
    [
        ("", 1, 1.0),
        ("A:B", 1, 1.0),
        ("ACME", 0, 1.0),
        ("ACME", 1.5, 1.0),
        ("ACME", 1, 0),
        ("ACME", 1, float("nan")),
    ],
)
def test_a_bad_trade_is_refused_with_its_reason_and_nothing_is_sent(args: tuple) -> None:
    c = ModelClient()
    with pytest.raises(AppError):
        TradingDesk(c, "d1").execute_trade(*args)
    assert c.sent == 0


def test_a_trade_record_round_trips() -> None:
    t = Trade("id", "d", "ACME", -3, 9.5, 1.0, "n")
    assert Trade.of(t.record()) == t


# -- inventory --------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.lists(st.integers(1, 10), max_size=30))
def test_reservations_never_exceed_the_stock_and_the_ledger_accounts_for_every_unit(
    stock: int, wants: list[int]
) -> None:
    c = ModelClient()
    s = Store(c)
    if stock:
        s.restock("sku1", stock)
    results = [s.reserve_inventory("sku1", q, f"c{i}", "wh1") for i, q in enumerate(wants)]
    left = stock
    for q, r in zip(wants, results, strict=True):  # the model: a sequential shop
        assert r.accepted == (q <= left)
        left -= q if r.accepted else 0
    assert s.available("sku1") == left
    assert reserved_units(s.reservations("sku1")) == stock - left


def test_the_warehouse_order_moves_only_along_its_workflow() -> None:
    s = Store(ModelClient())
    s.restock("sku1", 1)
    r = s.reserve_inventory("sku1", 1, "c", "w")
    assert s.order_state(r.reservation_id) == "reserved"
    assert s.advance_order(r.reservation_id, "shipped") is False  # not picked yet
    assert [s.advance_order(r.reservation_id, x) for x in ("picked", "shipped", "delivered")] == [True] * 3
    assert s.order_state(r.reservation_id) == "delivered"


def test_the_inventory_app_refuses_a_client_without_verdicts_and_bad_reservations() -> None:
    with pytest.raises(AppError, match="track_verdicts"):
        Store(ModelClient(track_verdicts=False))
    s = Store(ModelClient())
    for bad in [("sku", 0, "c", "w"), ("sku", 1, "c:x", "w"), ("", 1, "c", "w")]:
        with pytest.raises(AppError):
            s.reserve_inventory(*bad)


# -- event sourcing ---------------------------------------------------------------------------------
def test_versions_sort_by_clock_then_writer_and_pad_to_a_fixed_width() -> None:
    assert make_version(9, "b", "00") < make_version(10, "a", "00")
    assert make_version(10, "a", "00") < make_version(10, "b", "00")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["w1", "w2", "w3"]), min_size=1, max_size=40), st.randoms())
def test_events_from_interleaved_writers_come_back_unique_ordered_and_complete(
    order: list[str], rnd: Any
) -> None:
    shared = ModelClient()
    stores = {}
    for w in ("w1", "w2", "w3"):
        c = ModelClient(node_id=w)
        c.values = shared.values  # one aggregate, every writer's events in the same set
        stores[w] = EventStore(c, sync=False)
    sent: dict[str, list[str]] = {"w1": [], "w2": [], "w3": []}
    for i, w in enumerate(order):
        sent[w].append(stores[w].append_event("agg1", "e", {"i": i}).version)
    rnd.shuffle(shared.values["events:agg1"])  # arrival order does not matter
    got = [e.version for e in stores["w1"].get_events_for_aggregate("agg1")]
    assert sorted(got) == got and len(set(got)) == len(order)  # unique, ascending, none lost
    for versions in sent.values():
        assert [v for v in got if v in set(versions)] == versions  # each writer in its append order
    k = len(got) // 2
    assert [e.version for e in stores["w2"].get_events_for_aggregate("agg1", got[k])] == got[k:]
    # Read, then append from another writer: the new event sorts after everything read.
    stores["w3"].get_events_for_aggregate("agg1")
    assert stores["w3"].append_event("agg1", "e", {}).version > got[-1]


def test_load_folds_the_snapshot_and_only_the_events_after_it() -> None:
    es = EventStore(ModelClient())
    evs = [es.append_event("acc", "deposited", {"n": n}) for n in (5, 7, 11)]
    es.save_snapshot("acc", evs[1].version, 12)
    assert es.load("acc", lambda s, e: s + e.data["n"], 0) == (23, evs[2].version)
    assert in_order([], None) == []


def test_sync_appends_flush_each_event() -> None:
    c = ModelClient()
    EventStore(c).append_event("a", "t", {})
    EventStore(c, sync=False).append_event("a", "t", {})
    assert c.flushes == 1


# -- service mesh -----------------------------------------------------------------------------------
@given(st.integers(1, 20), st.lists(st.integers(1, 5), max_size=15))
def test_the_breaker_opens_exactly_when_reported_failures_reach_the_threshold(
    threshold: int, reports: list[int]
) -> None:
    m = Mesh(ModelClient())
    m.register_service("pay", "http://pay", threshold=threshold)
    for n in reports:
        m.update_circuit_breaker("pay", n)
    assert m.breaker_state("pay").failures == sum(reports)
    assert m.breaker_state("pay").open == (sum(reports) >= threshold) == breaker_open(sum(reports), threshold)


def test_a_reset_breaker_starts_a_new_epoch_at_zero_and_unknown_services_are_refused() -> None:
    m = Mesh(ModelClient())
    m.register_service("pay", "http://pay", threshold=2)
    m.update_circuit_breaker("pay", 2)
    assert m.breaker_state("pay").open
    m.reset_circuit_breaker("pay")
    st_ = m.breaker_state("pay")
    assert (st_.epoch, st_.failures, st_.open) == (1, 0, False)
    with pytest.raises(AppError, match="not registered"):
        m.update_circuit_breaker("nope", 1)
    with pytest.raises(AppError):
        m.update_circuit_breaker("pay", 0)


# -- rate limiting ----------------------------------------------------------------------------------
def test_one_gateway_alone_admits_exactly_the_limit() -> None:
    gw = RateLimiter(ModelClient(), "eu", ["eu", "us"], 50, 60, clock=lambda: 0.0)
    assert sum(gw.check_rate_limit("c1", "orders").allowed for _ in range(80)) == 50
    assert gw.admitted("c1", "orders") == 50


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 200), st.integers(0, 30), st.lists(st.sampled_from([0, 1]), min_size=1, max_size=400))
def test_two_gateways_overshoot_at_most_what_the_other_admitted_unseen(
    limit: int, lag: int, arrivals: list[int]
) -> None:
    """The model: gateway g sees the other's count as it was `lag` requests ago (replication lag).
    The app's rule must never admit beyond the limit plus the other's unseen admissions."""
    history: list[tuple[int, int]] = [(0, 0)]  # the true counts after every request
    own = [0, 0]
    unseen_max = 0
    for g in arrivals:
        seen = history[max(0, len(history) - 1 - lag)]
        other = seen[1 - g]
        if admit(own[g], {"o": other}, limit):
            own[g] += 1
        history.append((own[0], own[1]))
        unseen_max = max(unseen_max, own[1 - g] - other)
    total = sum(own)
    assert total <= limit + unseen_max
    assert total >= min(limit, len(arrivals)) or lag > 0
    assert slack_bound({"us": 100.0}, 1.5) == 150.0


def test_the_other_gateways_counts_are_re_read_off_the_request_path() -> None:
    """After the first request of a key, requests only use the last observation; a background
    thread refreshes it every refresh_s, so the other gateway's admissions show up without a read."""
    mc = ModelClient()
    reads: list[str] = []
    real_read = mc.read

    def counted_read(oid: str) -> Any:
        reads.append(oid)
        return real_read(oid)

    mc.read = counted_read  # type: ignore[method-assign]
    gw = RateLimiter(mc, "eu", ["eu", "us"], 1000, 60, refresh_s=0.02, clock=lambda: 0.0)
    assert gw.check_rate_limit("c", "e").allowed
    assert len(reads) == 2  # this gateway's own count once, the other's once
    mc.values[counter_id("c", "e", 0, "us")] = 900  # the other gateway admitted 900 meanwhile
    d = gw.check_rate_limit("c", "e")
    deadline = time.monotonic() + 5
    while d.observed_total - d.own < 900 and time.monotonic() < deadline:
        time.sleep(0.01)
        d = gw.check_rate_limit("c", "e")
    assert d.observed_total - d.own == 900
    assert all(oid == counter_id("c", "e", 0, "us") for oid in reads[2:])  # only the refresher read
    for _ in range(200):
        gw.check_rate_limit("c", "e")
    assert not gw.check_rate_limit("c", "e").allowed  # 900 + this gateway's 100 reach the limit
    assert gw.staleness("c", "e") < 5
    gw.close()
    assert gw._refresher is not None and not gw._refresher.is_alive()


def test_windows_are_separate_and_bad_names_are_refused() -> None:
    now = [0.0]
    gw = RateLimiter(ModelClient(), "eu", ["eu", "us"], 2, 10, clock=lambda: now[0])
    assert [gw.check_rate_limit("c", "e").allowed for _ in range(3)] == [True, True, False]
    now[0] = 10.0
    assert gw.check_rate_limit("c", "e").allowed
    with pytest.raises(AppError):
        gw.check_rate_limit("c:1", "e")
    with pytest.raises(AppError):
        RateLimiter(ModelClient(), "ap", ["eu", "us"], 2)


def test_every_case_names_a_pipeline_that_exists() -> None:
    known = {r.pipeline for r in pipelines().rules.values()}
    assert {c.pipeline for c in CASES.values()} <= known


# -- factory ----------------------------------------------------------------------------------------
reports = st.lists(
    st.fixed_dictionaries(
        {"line": st.sampled_from(["l1", "l2"]), "produced": st.integers(0, 50)},
        optional={
            "quality": st.floats(0, 100),
            "status": st.sampled_from(["running", "paused"]),
            "readings": st.dictionaries(st.sampled_from(["temp", "rpm"]), st.floats(-50, 5000), max_size=2),
        },
    ),  # fmt: skip
    max_size=30,
)


@given(reports)
def test_device_reports_become_mqtt_messages_whose_totals_equal_the_reports(rs: list[dict[str, Any]]) -> None:
    totals: dict[str, int] = {}
    for i, r in enumerate(rs):
        for topic, payload in messages(f"dev{i % 3}", r, now=float(i)):
            kind, _, oid = topic.rpartition("/")
            rule = pipelines().rule_for(oid)
            assert rule is not None and rule.pipeline == "factory", oid
            if kind == "jarvis/ops" and rule.crdt_type == "gcounter":
                totals[oid] = totals.get(oid, 0) + payload["args"]["n"]
            elif kind == "telemetry":
                assert rule.crdt_type == "timeseries" and payload["ts"] == float(i)
    model: dict[str, int] = {}
    for r in rs:
        if r["produced"]:
            model[f"production:{r['line']}"] = model.get(f"production:{r['line']}", 0) + r["produced"]
    assert totals == model


@pytest.mark.parametrize(
    "report",
    [
        {"produced": 1},
        {"line": "l", "produced": -1},
        {"line": "l", "quality": 101},
        {"line": "l", "readings": {"t": "hot"}},
    ],
)
def test_a_bad_device_report_is_refused_with_its_reason(report: dict[str, Any]) -> None:
    with pytest.raises(AppError):
        messages("dev1", report)


# -- EHR --------------------------------------------------------------------------------------------
class _MapModelClient(ModelClient):
    """Adds the map: entries as field -> latest register value (the naive field-level merge)."""

    def map(self, oid: str) -> Any:
        self._check(oid, "map")
        c = self

        class H:
            def update(self, key: str, nested: str, kind: str, args: dict[str, Any]) -> None:
                assert (nested, kind) == ("register", "write")
                c.values.setdefault(oid, {"entries": {}})["entries"][key] = json.loads(
                    json.dumps(args["value"])
                )

        return H()


def test_a_record_merges_fields_from_two_providers_and_phi_never_leaves_in_plaintext(tmp_path: Any) -> None:
    c = _MapModelClient()
    keys = DataKeyring(tmp_path / "clinic")
    a, b = EHR(c, keyring=keys), EHR(c, keyring=keys)
    a.update_patient_record("p1", {"name": "Ada Lovelace", "ward": "3B"}, "dr-a")
    b.update_patient_record("p1", {"diagnosis": "arrhythmia", "ward": "4C"}, "dr-b")
    stored = json.dumps(c.values)
    assert "Ada Lovelace" not in stored and "arrhythmia" not in stored and "4C" in stored
    assert EHR(c, keyring=keys).read_patient_record("p1") == {
        "diagnosis": "arrhythmia", "name": "Ada Lovelace", "ward": "4C",
    }  # fmt: skip
    assert EHR(c, keyring=keys).read_patient_record("p1", phi=False) == {
        "diagnosis": HIDDEN,
        "name": HIDDEN,
        "ward": "4C",
    }
    with pytest.raises(AppError, match="no clinical data key"):
        EHR(c, keyring=DataKeyring(tmp_path / "elsewhere")).read_patient_record("p1")
    assert a.providers("p1") == {"name": "dr-a", "diagnosis": "dr-b", "ward": "dr-b"}
    assert [x["fields"] for x in a.audit_trail("p1")] == [["name", "ward"], ["diagnosis", "ward"]]


def test_a_sealed_value_opens_only_for_its_own_object_and_field(tmp_path: Any) -> None:
    key = DataKeyring(tmp_path).key("healthcare")[1]
    token = seal(key, "ehr:p1", "name", "Ada")
    assert unseal(key, "ehr:p1", "name", token) == "Ada"
    for oid, fname in (("ehr:p2", "name"), ("ehr:p1", "notes")):
        with pytest.raises(AppError, match="moved"):
            unseal(key, oid, fname, token)


# -- CMS --------------------------------------------------------------------------------------------
class _TextModelClient(_MapModelClient):
    """Adds text as a plain string per document (one editor: no concurrency to model here)."""

    def text(self, oid: str) -> Any:
        self._check(oid, "text")
        c = self

        class H:
            def insert(self, i: int, s: str) -> None:
                t = c.values.get(oid, {"text": ""})["text"]
                c.values[oid] = {"text": t[:i] + s + t[i:]}

            def delete(self, i: int, n: int = 1) -> None:
                t = c.values.get(oid, {"text": ""})["text"]
                c.values[oid] = {"text": t[:i] + t[i + n :]}

            def text(self) -> str:
                return c.values.get(oid, {"text": ""})["text"]

            def sync(self) -> None:
                pass

        return H()

    def map(self, oid: str) -> Any:
        self._check(oid, "map")
        c = self

        class H:
            def update(self, key: str, nested: str, kind: str, args: dict[str, Any]) -> None:
                entries = c.values.setdefault(oid, {"entries": {}})["entries"]
                if nested == "set":
                    entries.setdefault(key, []).append(args["element"])
                else:
                    entries[key] = args["value"]

        return H()


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 30), st.text("abc", min_size=1, max_size=4)), max_size=25
    )
)
def test_edits_apply_like_string_operations_and_out_of_range_edits_are_refused(edits: list[tuple]) -> None:
    c = _TextModelClient()
    ed = Editor(c, "ada")
    model = ""
    for is_insert, i, s in edits:
        op = {"insert": {"index": i, "text": s}} if is_insert else {"delete": {"index": i, "n": len(s)}}
        if i > len(model) or (not is_insert and i + len(s) > len(model)):
            with pytest.raises(AppError, match="outside the document"):
                ed.edit_document("d1", "ada", op)
            continue
        model = model[:i] + s + model[i:] if is_insert else model[:i] + model[i + len(s) :]
        assert ed.edit_document("d1", "ada", op) == model
    assert ed.document("d1") == model
    assert ed.who_is_here("d1") == (["ada"] if ed.history("d1") else [])


def test_presence_comments_and_bad_operations() -> None:
    assert present({"a": {"ts": 100.0}, "b": {"ts": 10.0}, "c": None}, 120.0, 30) == ["a"]
    ed = Editor(_TextModelClient(), "ada")
    ed.comment("d1", "t1", "first")
    ed.comment("d1", "t1", "second")
    assert [x["text"] for x in ed.threads("d1")["t1"]] == ["first", "second"]
    for bad in ({}, {"insert": {"index": -1, "text": "x"}}, {"insert": {"index": 0, "text": ""}},
                {"delete": {"index": 0, "n": 0}}, {"move": {}}, {"insert": {}, "delete": {}}):  # fmt: skip
        with pytest.raises(AppError):
            parse_operation(bad)
    with pytest.raises(AppError, match="edits as"):
        ed.edit_document("d1", "grace", {"insert": {"index": 0, "text": "x"}})


def test_the_risk_watcher_republishes_only_when_positions_change_and_alerts_past_the_limit() -> None:
    c = ModelClient()
    desk = TradingDesk(c, "d1")
    w = RiskWatcher(desk, limits={"ACME": 1_000.0})
    desk.execute_trade("ACME", 5, 100.0)
    assert w.tick().alerts == []  # exposure 500
    assert w.tick() is None  # nothing changed
    desk.execute_trade("ACME", 6, 100.0)  # 11 x 100 > 1,000
    assert w.tick().alerts == ["ACME: exposure 1100.00 above limit 1000.00"]
    assert desk.risk()["alerts"] == w.reports[-1].alerts
