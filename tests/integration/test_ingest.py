"""The ingest gateway on the real stack (issue 18): curl and mosquitto_pub in, query API out.

Every operation kind posted with curl reaches the values an independent model computes; MQTT
telemetry at QoS 1 lands once per point; an Idempotency-Key retry counts once; the bad-input battery
is answered with a 4xx and a reason each while the worker keeps serving.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from jarvis.config import Settings
from jarvis.roles import web_port
from jarvis.security.key_store import FileAuthStore
from pipelines.loader import pipelines
from tests.integration.cli_helpers import curl_tls
from tests.integration.pipeline_helpers import connect, normalize, read_value, wait_until
from tests.model import SentOp, model_value

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw(stack: Any, settings: Settings) -> dict[str, Any]:
    store = FileAuthStore(settings.home)
    tag = uuid.uuid4().hex[:6]
    admin, _ = store.create_key("admin", f"test-admin-{tag}")
    store.set_role(f"ro-{tag}", ["*"], [], tasks=False, admin=False)
    reader, _ = store.create_key(f"ro-{tag}", f"test-reader-{tag}")
    store.set_role(f"qual-{tag}", ["quality:*"], ["quality:*"], tasks=False, admin=False)
    device, _ = store.create_key(f"qual-{tag}", f"device-{tag}")
    from jarvis.stack import mosquitto

    mosquitto.reload(settings)
    r = settings.region_config("eu")
    url = settings.http_url(web_port(settings, "ingest", "eu"), r.host)
    assert wait_until(lambda: curl(url + "/healthz")[0] == 200, 60)
    return {
        "url": url, "admin": admin, "reader": reader, "device": device, "device_name": f"device-{tag}",
        "query": r.query_url, "mqtt_port": r.mqtt_port, "host": r.host, "tag": tag,
    }  # fmt: skip


def curl(url: str, body: bytes | None = None, *, key: str | None = None, ctype: str = "application/json",
         headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any, dict[str, str]]:  # fmt: skip
    """(status, JSON body or text, headers) of curl's answer."""
    argv = ["curl", "-sS", "-D", "-", "--max-time", str(timeout), *curl_tls(), url]
    if key:
        argv += ["-H", f"Authorization: Bearer {key}"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    if body is not None:
        argv += ["-X", "POST", "-H", f"Content-Type: {ctype}", "--data-binary", "@-"]
    out = subprocess.run(argv, input=body, capture_output=True, timeout=timeout + 5).stdout
    head, _, rest = out.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, rest = rest.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP") else 0
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    try:
        return status, json.loads(rest), hdrs
    except ValueError:
        return status, rest.decode(errors="replace"), hdrs


def post(gw: dict[str, Any], ops: Any, key: str | None = None, **kw: Any) -> tuple[int, Any, dict[str, str]]:
    body = ops if isinstance(ops, bytes) else json.dumps(ops).encode()
    return curl(gw["url"] + "/v1/ops", body, key=key or gw["admin"], **kw)


def test_every_kind_over_curl_equals_the_model(gw: dict[str, Any]) -> None:
    t = gw["tag"]
    wf = pipelines().rule_for("doc:x").workflow.as_dict()  # type: ignore[union-attr]
    requests: list[list[dict[str, Any]]] = [
        [{"object_id": f"ctr:{t}", "kind": "increment", "args": {"n": 5}},
         {"object_id": f"ctr:{t}", "kind": "decrement", "args": {"n": 2}},
         {"object_id": f"gctr:{t}", "kind": "increment"},
         {"object_id": f"gs:{t}", "kind": "add", "args": {"element": "a"}},
         {"object_id": f"ors:{t}", "kind": "add", "args": {"element": "x"}},
         {"object_id": f"ors:{t}", "kind": "add", "args": {"element": "y"}}],
        [{"object_id": f"ors:{t}", "kind": "remove", "args": {"element": "x"}},
         {"object_id": f"reg:{t}", "kind": "write", "args": {"value": {"price": 19.99}}},
         {"object_id": f"ts:{t}", "kind": "append_data_point", "args": {"timestamp": 1732520000.0, "value": 93.1}},
         {"object_id": f"ts:{t}", "kind": "append", "args": {"timestamp": 1732520001.0, "value": 94.0, "metadata": {"s": "a"}}},
         {"object_id": f"g:{t}", "kind": "add_vertex", "args": {"vertex": "api"}},
         {"object_id": f"g:{t}", "kind": "add_vertex", "args": {"vertex": "db"}},
         {"object_id": f"g:{t}", "kind": "add_edge", "args": {"src": "api", "dst": "db"}},
         {"object_id": f"g:{t}", "kind": "add_vertex", "args": {"vertex": "tmp"}},
         {"object_id": f"doc:{t}", "kind": "transition", "args": {"to_state": "submitted"}}],
        [{"object_id": f"g:{t}", "kind": "remove_vertex", "args": {"vertex": "tmp"}},
         {"object_id": f"g:{t}", "kind": "add_edge", "args": {"src": "db", "dst": "api"}}],
        [{"object_id": f"g:{t}", "kind": "remove_edge", "args": {"src": "db", "dst": "api"}},
         {"object_id": f"doc:{t}", "kind": "transition", "args": {"to_state": "approved"}}],
    ]  # fmt: skip
    sent: list[SentOp] = []
    seq = 0
    for ops in requests:
        status, body, _ = post(gw, ops)
        assert status == 200, body
        assert [r["status"] for r in body["results"]] == ["accepted"] * len(ops)
        for op in ops:
            rule = pipelines().rule_for(op["object_id"])
            kind = "append" if op["kind"] == "append_data_point" else op["kind"]
            seq += 1  # one gateway instance stamps HLCs in arrival order: the model's order
            sent.append(SentOp(op["object_id"], rule.crdt_type, kind, op.get("args", {}), seq, "ingest-eu-0"))  # type: ignore[union-attr]
    by: dict[str, list[SentOp]] = {}
    for s in sent:
        by.setdefault(s.object_id, []).append(s)
    want = {oid: model_value(ops, wf) for oid, ops in by.items()}

    def equal() -> bool:
        return all(normalize(by[o][0].crdt_type, read_value(gw["query"], o)) == w for o, w in want.items())

    assert wait_until(equal, 30), {o: read_value(gw["query"], o) for o in want}
    # Where an operation is: accepted, with its dot; the principal recorded in it.
    op_id = body["results"][0]["op_id"]
    status, where, _ = curl(f"{gw['url']}/v1/ops/{op_id}", key=gw["reader"])
    assert status == 200 and where["state"] == "accepted" and len(where["dot"]) == 4, where
    assert where["principal"].startswith("test-admin-") and where["via"] == "ingest-eu-0"


def test_a_rejected_operation_says_why_over_get(gw: dict[str, Any]) -> None:
    # A workflow state the definition lacks passes the shape checks only if the gateway cannot know;
    # it can (the gate's rules), so it is a 400 at once, naming the state.
    status, body, _ = post(gw, [{"object_id": f"doc:{gw['tag']}-r", "kind": "transition", "args": {"to_state": "nosuch"}}])
    assert status == 400 and "unknown workflow state 'nosuch'" in body["results"][0]["reasons"][0]


def test_a_bad_operation_writes_nothing_of_its_request(gw: dict[str, Any]) -> None:
    oid = f"ctr:{gw['tag']}-partial"
    status, body, _ = post(gw, [{"object_id": oid, "kind": "increment", "args": {"n": 1}},
                                {"object_id": oid, "kind": "increment", "args": {"n": "x"}}])  # fmt: skip
    assert status == 400
    assert body["results"][0]["status"] == "not_written"
    assert body["results"][1]["reasons"] == ["args.n must be an integer, got str"]
    status, _, _ = post(gw, [{"object_id": oid, "kind": "increment", "args": {"n": 7}}])
    assert status == 200
    assert wait_until(lambda: read_value(gw["query"], oid) == 7, 20)
    time.sleep(1)
    assert read_value(gw["query"], oid) == 7  # the first request's valid increment never came


def test_auth_401_and_403(gw: dict[str, Any]) -> None:
    op = {"object_id": f"ctr:{gw['tag']}-auth", "kind": "increment"}
    status, body, hdrs = curl(gw["url"] + "/v1/ops", json.dumps(op).encode())
    assert status == 401 and "Bearer" in body["error"] and "www-authenticate" in hdrs
    assert post(gw, op, key="jk_00000000_" + "A" * 43)[0] == 401
    status, body, _ = post(gw, op, key=gw["reader"])
    assert status == 403 and "may not write" in body["results"][0]["reasons"][0]
    status, body, _ = post(gw, op, key=gw["device"])
    assert status == 403
    status, _, _ = post(gw, {"object_id": f"quality:{gw['tag']}", "kind": "append", "args": {"timestamp": 1.0, "value": 5}}, key=gw["device"])
    assert status == 200


def test_idempotency_key_retry_counts_once(gw: dict[str, Any], stack: Any) -> None:
    oid = f"ctr:{gw['tag']}-idem"
    ops = [{"object_id": oid, "kind": "increment", "args": {"n": 3}}]
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = post(gw, ops, headers=key)
    assert first[0] == 200
    again = post(gw, ops, headers=key)
    assert again[0] == 200 and again[1] == first[1] and again[2].get("idempotent-replayed") == "true"
    assert post(gw, [{**ops[0], "args": {"n": 4}}], headers=key)[0] == 409
    # Across a restart of the gateway: the answer comes from Kafka, not from its memory.
    proc = next(p for p in stack.worker_procs() if p.name == "worker-ingest-eu")
    proc.stop()
    proc.start()
    assert wait_until(lambda: curl(gw["url"] + "/healthz")[0] == 200, 60)
    third = post(gw, ops, headers=key)
    assert third[0] == 200 and third[1] == first[1]
    assert wait_until(lambda: read_value(gw["query"], oid) == 3, 20)
    time.sleep(1.5)
    assert read_value(gw["query"], oid) == 3


def test_a_pending_idempotent_request_rewritten_after_a_crash_counts_once(
    gw: dict[str, Any], settings: Settings
) -> None:
    """The gateway dies between the Kafka write and the answer: here a second gateway object of the
    same node (its key, the region's Kafka) writes the request and fails before recording the
    answer. The retry to the running gateway finds the pending record and rewrites the very same
    batches, which the verifier's re-send protection refuses to count again."""
    import asyncio

    from connectors.ingest.http import IngestApi
    from connectors.ingest.idempotency import IdempotencyStore
    from connectors.ingest.status import OpStatus
    from connectors.ingest.writer import IngressWriter

    oid = f"ctr:{gw['tag']}-crash"
    ops = [{"object_id": oid, "kind": "increment", "args": {"n": 2}}] * 3
    raw = json.dumps(ops).encode()
    idem_key = uuid.uuid4().hex
    store = FileAuthStore(settings.home)
    principal = store.lookup(gw["admin"])
    assert principal is not None

    class Killed(Exception):
        pass

    async def crash_after_the_write() -> None:
        writer = IngressWriter(settings, "eu", "ingest-eu-0", pipelines())
        idem = IdempotencyStore(settings.bootstrap("eu"))
        api = IngestApi("eu", "ingest-eu-0", writer, store, idem, OpStatus(writer.bootstrap, "eu"))

        async def killed(*_: Any) -> None:
            raise Killed

        api._remember = killed  # type: ignore[method-assign]
        import hashlib

        key = f"{principal.key_id}:{idem_key}".encode()
        try:
            with pytest.raises(Killed):
                await api._post_json(raw, principal, (key, hashlib.sha256(raw).hexdigest(), None))
        finally:
            writer.close()
            idem.close()

    asyncio.run(crash_after_the_write())
    assert wait_until(lambda: read_value(gw["query"], oid) == 6, 20)
    status, body, _ = post(gw, raw, headers={"Idempotency-Key": idem_key})
    assert status == 200 and [r["status"] for r in body["results"]] == ["accepted"] * 3
    time.sleep(3)
    assert read_value(gw["query"], oid) == 6
    status, again, _ = post(gw, raw, headers={"Idempotency-Key": idem_key})
    assert again == body


def test_ndjson_is_answered_line_by_line(gw: dict[str, Any]) -> None:
    oid = f"ctr:{gw['tag']}-nd"
    lines = [json.dumps({"object_id": oid, "kind": "increment", "args": {"n": 1}}) for _ in range(1200)]
    lines.insert(5, "{not json")
    lines.insert(9, json.dumps({"object_id": oid, "kind": "explode"}))
    status, text, _ = post(gw, ("\n".join(lines) + "\n").encode(), ctype="application/x-ndjson")
    assert status == 200
    results = [json.loads(ln) for ln in text.splitlines()] if isinstance(text, str) else [text]
    assert [r["index"] for r in results] == list(range(1202))
    assert results[5]["status"] == "rejected" and "not JSON" in results[5]["reasons"][0]
    assert results[9]["status"] == "rejected" and "no operation 'explode'" in results[9]["reasons"][0]
    assert sum(r["status"] == "accepted" for r in results) == 1200
    assert wait_until(lambda: read_value(gw["query"], oid) == 1200, 30)


BAD_INPUTS: list[tuple[str, bytes, str, int, str]] = [
    ("invalid JSON", b"{", "application/json", 400, "not JSON"),
    ("unknown prefix", b'{"object_id": "nosuch:1", "kind": "increment"}', "application/json", 400, "no pipeline defines"),
    ("unknown kind", b'{"object_id": "ctr:b", "kind": "explode"}', "application/json", 400, "no operation 'explode'"),
    ("wrong argument type", b'{"object_id": "ctr:b", "kind": "increment", "args": {"n": [1]}}', "application/json", 400, "must be an integer"),
    ("NaN", b'{"object_id": "ts:b", "kind": "append", "args": {"timestamp": 1, "value": NaN}}', "application/json", 400, "not JSON"),
    ("Infinity", b'{"object_id": "ts:b", "kind": "append", "args": {"timestamp": 1, "value": Infinity}}', "application/json", 400, "not JSON"),
    ("1e400", b'{"object_id": "ts:b", "kind": "append", "args": {"timestamp": 1, "value": 1e400}}', "application/json", 400, ""),
    ("a 1 MB string", json.dumps({"object_id": "reg:b", "kind": "write", "args": {"value": "x" * 1_000_000}}).encode(), "application/json", 400, "payload of"),
    ("body over the limit", b"[" + b'{"object_id": "ctr:b", "kind": "increment"},' * 100_000 + b"1]", "application/json", 413, "exceeds"),
    ("10,000-deep nesting", b"[" * 10_000 + b"]" * 10_000, "application/json", 400, "not JSON"),
    ("invalid UTF-8", b'{"object_id": "ctr:\xff\xfe", "kind": "increment"}', "application/json", 400, "not JSON"),
    ("empty body", b"", "application/json", 400, "empty body"),
    ("wrong content type", b"n=1", "application/x-www-form-urlencoded", 415, "Content-Type"),
    ("an empty array", b"[]", "application/json", 400, "nothing to write"),
    ("a JSON string", b'"hello"', "application/json", 400, "must be a JSON object"),
]  # fmt: skip


def test_bad_input_battery_each_a_4xx_with_a_reason(gw: dict[str, Any]) -> None:
    for name, body, ctype, want, reason in BAD_INPUTS:
        status, answer, _ = post(gw, body, ctype=ctype)
        assert status == want, (name, status, str(answer)[:300])
        text = json.dumps(answer)
        assert reason in text, (name, text[:300])
        assert curl(gw["url"] + "/healthz")[0] == 200, f"gateway down after {name}"


def test_a_slow_client_does_not_stop_the_others(gw: dict[str, Any]) -> None:
    host, port = gw["url"].split("://", 1)[1].split(":")
    slow = [connect(host, int(port)) for _ in range(20)]
    try:
        for s in slow:
            s.sendall(b"POST /v1/ops HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Type: application/json\r\n")
        t0 = time.monotonic()
        status, _, _ = post(gw, {"object_id": f"ctr:{gw['tag']}-slow", "kind": "increment"})
        assert status == 200 and time.monotonic() - t0 < 5
    finally:
        for s in slow:
            s.close()


def test_openapi_lists_every_kind_of_the_registry(gw: dict[str, Any]) -> None:
    from jarvis.crdt import registry

    status, doc, _ = curl(gw["url"] + "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    titles = {s["title"] for s in doc["components"]["schemas"]["Operation"]["oneOf"]}
    assert {f"{t} {k}" for t in registry.names() for k in registry.SPECS[t].kinds} <= titles
    assert "timeseries append_data_point" in titles


# -- MQTT ---------------------------------------------------------------------------------------------


def mosquitto_pub(gw: dict[str, Any], lines: list[str], topic: str | None = None, user: str | None = None,
                  password: str | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Publish one message per line (-l), QoS 1. With topic None each line is `topic payload`."""
    argv = ["mosquitto_pub", "-h", gw["host"], "-p", str(gw["mqtt_port"]), "-q", "1",
            "-u", user or gw["device_name"], "-P", password or gw["device"]]  # fmt: skip
    if topic is not None:
        return subprocess.run([*argv, "-t", topic, "-l"], input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=120)
    procs = []
    by_topic: dict[str, list[str]] = {}
    for ln in lines:
        t, _, payload = ln.partition(" ")
        by_topic.setdefault(t, []).append(payload)
    for t, payloads in by_topic.items():
        procs.append(subprocess.run([*argv, "-t", t, "-l"], input="\n".join(payloads).encode() + b"\n", capture_output=True, timeout=120))
    return procs[-1]


def series_len(gw: dict[str, Any], oid: str) -> int:
    v = read_value(gw["query"], oid)
    return len(v) if v else 0


def test_mqtt_telemetry_2000_points_over_20_series_all_there_once(gw: dict[str, Any]) -> None:
    t = gw["tag"]
    base = 1732520000.0
    for s in range(20):
        payloads = [json.dumps({"ts": base + i, "value": float(i % 100)}) for i in range(100)]
        r = mosquitto_pub(gw, payloads, topic=f"telemetry/quality:{t}-{s}")
        assert r.returncode == 0, r.stderr
    oids = [f"quality:{t}-{s}" for s in range(20)]
    assert wait_until(lambda: all(series_len(gw, o) >= 100 for o in oids), 60), [series_len(gw, o) for o in oids]
    time.sleep(1.5)
    for o in oids:
        points = read_value(gw["query"], o)
        assert sorted(p["timestamp"] for p in points) == [base + i for i in range(100)], o


def test_mqtt_refuses_a_wrong_password_and_rejects_garbage_with_reasons(gw: dict[str, Any], settings: Settings) -> None:
    bad = mosquitto_pub(gw, ['{"value": 1}'], topic=f"telemetry/quality:{gw['tag']}-x", password="wrong")
    assert bad.returncode != 0 and b"not authorised" in bad.stderr.lower().replace(b"authorized", b"authorised")
    t = gw["tag"]
    cases = {
        f"telemetry/quality:{t}-garbage": "\x00\x01binary",
        f"telemetry/quality:{t}-shape": '{"temp": 3}',
        f"telemetry/nosuchtype:{t}": '{"value": 3}',
        f"jarvis/ops/quality:{t}-ops": '{"kind": "explode"}',
    }
    since = int(time.time() * 1000) - 1000
    for topic, payload in cases.items():
        assert mosquitto_pub(gw, [payload], topic=topic).returncode == 0
    import datetime as dt

    from connectors.audit import rejected_between

    def found() -> dict[str, list[str]]:
        rows = rejected_between(settings, "eu", dt.datetime.fromtimestamp(since / 1000, dt.UTC),
                                dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5), None)  # fmt: skip
        return {r["source"].split(":-1@")[0]: r["reasons"] for r in rows if r["source"].split(":-1@")[0] in cases}

    assert wait_until(lambda: len(found()) == len(cases), 20), found()
    got = found()
    assert "not JSON" in got[f"telemetry/quality:{t}-garbage"][0]
    assert "ts, value, metadata" in got[f"telemetry/quality:{t}-shape"][0]
    assert "no pipeline defines" in got[f"telemetry/nosuchtype:{t}"][0]
    assert "no operation 'explode'" in got[f"jarvis/ops/quality:{t}-ops"][0]
    # The gateway still serves MQTT: a good point after the garbage lands.
    assert mosquitto_pub(gw, ['{"ts": 5, "value": 1}'], topic=f"telemetry/quality:{t}-after").returncode == 0
    assert wait_until(lambda: series_len(gw, f"quality:{t}-after") == 1, 20)


def test_mqtt_publish_over_the_broker_limit_is_refused(gw: dict[str, Any]) -> None:
    big = "x" * (2 * 1024 * 1024)
    r = subprocess.run(
        ["mosquitto_pub", "-h", gw["host"], "-p", str(gw["mqtt_port"]), "-q", "1", "-u", gw["device_name"],
         "-P", gw["device"], "-t", f"telemetry/quality:{gw['tag']}-big", "-s"],
        input=big.encode(), capture_output=True, timeout=60,
    )  # fmt: skip
    time.sleep(1)
    assert series_len(gw, f"quality:{gw['tag']}-big") == 0, r.stderr
    assert mosquitto_pub(gw, ['{"ts": 5, "value": 1}'], topic=f"telemetry/quality:{gw['tag']}-big2").returncode == 0
    assert wait_until(lambda: series_len(gw, f"quality:{gw['tag']}-big2") == 1, 20)


@pytest.mark.slow
def test_mqtt_10000_points_with_kill_9_of_the_gateway_all_there_once(gw: dict[str, Any], stack: Any) -> None:
    t = gw["tag"]
    base = 1732600000.0
    proc = next(p for p in stack.worker_procs() if p.name == "worker-ingest-eu")
    pubs = []
    for s in range(20):
        payloads = "\n".join(json.dumps({"ts": base + i, "value": float(i % 100)}) for i in range(500)) + "\n"
        argv = ["mosquitto_pub", "-h", gw["host"], "-p", str(gw["mqtt_port"]), "-q", "1", "-u", gw["device_name"],
                "-P", gw["device"], "-t", f"telemetry/quality:{t}-k{s}", "-l"]  # fmt: skip
        p = subprocess.Popen(argv, stdin=subprocess.PIPE)
        pubs.append((p, payloads))
    for p, payloads in pubs[:10]:
        p.communicate(payloads.encode(), timeout=120)
    proc.kill9()
    proc.start()
    for p, payloads in pubs[10:]:
        p.communicate(payloads.encode(), timeout=120)
    oids = [f"quality:{t}-k{s}" for s in range(20)]
    assert wait_until(lambda: all(series_len(gw, o) >= 500 for o in oids), 120), [series_len(gw, o) for o in oids]
    time.sleep(2)
    assert [series_len(gw, o) for o in oids] == [500] * 20


def test_audit_names_the_principal_via_the_gateway(gw: dict[str, Any], settings: Settings) -> None:
    import datetime as dt

    from connectors.audit import audit_window

    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    oid = f"ctr:{gw['tag']}-audit"
    assert post(gw, {"object_id": oid, "kind": "increment"}, key=gw["admin"])[0] == 200

    def who() -> list[str]:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        got = audit_window(settings, "eu", since, until, "ctr")
        return [g["node_id"] for g in got["by_node_prefix"]]

    assert wait_until(lambda: f"test-admin-{gw['tag']} via ingest-eu-0" in who(), 30), who()


def test_mqtt_a_left_gateway_session_is_reported_and_dropped_then_every_point_arrives(
    gw: dict[str, Any], settings: Settings
) -> None:
    """The CI failure of issue 18 on the real stack: a gateway instance that is not configured left
    a persistent session in eu's shared subscription (played by mosquitto_sub) and takes every
    other point; `stack status` names it, `jarvis ingest drop-session` ends it, and the stack's
    gateway then gets every point."""
    from jarvis.mqtt_sessions import client_id, share_group
    from jarvis.stack import mosquitto
    from tests.integration.cli_helpers import jarvis, ok

    t, ghost = gw["tag"], client_id("eu", 9)
    left = ["mosquitto_sub", "-h", gw["host"], "-p", str(gw["mqtt_port"]), "-c", "-i", ghost, "-q", "1",
            "-u", mosquitto.BRIDGE_USER, "-P", mosquitto.bridge_secret(settings),
            "-t", f"$share/{share_group('eu')}/telemetry/#", "-E"]  # fmt: skip
    assert subprocess.run(left, capture_output=True, timeout=20).returncode == 0

    def status() -> dict[str, Any]:
        return json.loads(ok(jarvis("stack", "status", "--json")))

    def ghosts() -> list[dict[str, Any]]:
        return [g for g in status()["regions"]["eu"]["mqtt_ghost_sessions"] if g["client_id"] == ghost]

    try:
        before = [json.dumps({"ts": 1732700000.0 + i, "value": 1.0}) for i in range(20)]
        assert mosquitto_pub(gw, before, topic=f"telemetry/quality:{t}-ghost-a").returncode == 0
        # Round robin between the gateway and the offline session: the gateway writes about half,
        # the rest is queued for the session, which status names with its queue.
        def split() -> tuple[int, int]:
            g = ghosts()
            return series_len(gw, f"quality:{t}-ghost-a"), g[0]["queued"] if g else 0

        assert wait_until(lambda: sum(split()) == 20, 30), split()
        assert 0 < split()[0] < 20
        assert any(ghost in w and "drop-session" in w for w in status()["warnings"])
    finally:
        r = jarvis("ingest", "drop-session", "--region", "eu", "--instance", "9")
    assert r.returncode == 0 and f"ended MQTT session {ghost}" in r.stderr, r.stderr
    assert wait_until(lambda: not ghosts(), 10)

    after = [json.dumps({"ts": 1732700000.0 + i, "value": 1.0}) for i in range(200)]
    assert mosquitto_pub(gw, after, topic=f"telemetry/quality:{t}-ghost-b").returncode == 0
    assert wait_until(lambda: series_len(gw, f"quality:{t}-ghost-b") == 200, 60), series_len(gw, f"quality:{t}-ghost-b")


def test_mqtt_an_unconfigured_gateway_drains_a_left_session_into_kafka_and_leaves_none(
    gw: dict[str, Any], settings: Settings, tmp_path: Any
) -> None:
    """`jarvis worker ingest --instance 8` (not a configured instance) finds the persistent session
    left under its client id holding half of a series, writes those points through Kafka before it
    serves, runs with a clean session, and leaves no session behind when it stops."""
    import os
    import sys

    from jarvis.mqtt_sessions import client_id, share_group
    from jarvis.stack import mosquitto
    from tests.integration.cli_helpers import jarvis, ok

    t, instance = gw["tag"], 8
    ghost, eu = client_id("eu", instance), settings.region_config("eu")
    left = ["mosquitto_sub", "-h", gw["host"], "-p", str(gw["mqtt_port"]), "-c", "-i", ghost, "-q", "1",
            "-u", mosquitto.BRIDGE_USER, "-P", mosquitto.bridge_secret(settings),
            "-t", f"$share/{share_group('eu')}/telemetry/#", "-E"]  # fmt: skip
    assert subprocess.run(left, capture_output=True, timeout=20).returncode == 0
    oid = f"quality:{t}-drain"
    points = [json.dumps({"ts": 1732800000.0 + i, "value": 2.0}) for i in range(20)]
    assert mosquitto_pub(gw, points, topic=f"telemetry/{oid}").returncode == 0

    def held() -> int:
        return sum(g.queued for g in mosquitto.ghost_sessions(settings, eu) if g.client_id == ghost)

    assert wait_until(lambda: held() > 0 and held() + series_len(gw, oid) == 20, 30), (held(), series_len(gw, oid))
    ok(jarvis("keys", "create", f"ingest-eu-{instance}", "--trust"))  # its batches must verify
    log = tmp_path / "gateway.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jarvis.cli", "worker", "ingest", "--region", "eu", "--instance", str(instance)],
            env=os.environ, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        assert wait_until(lambda: "of the left session written" in log.read_text(), 60), log.read_text()[-3000:]
        assert "not one of eu's 1 configured instance(s)" in log.read_text()
        assert wait_until(lambda: series_len(gw, oid) == 20, 60), series_len(gw, oid)
    finally:
        proc.terminate()
        proc.wait(30)
    assert wait_until(lambda: ghost not in mosquitto_db_sessions(settings), 10), "the clean session outlived its gateway"
    after = [json.dumps({"ts": 1732800100.0 + i, "value": 2.0}) for i in range(100)]
    assert mosquitto_pub(gw, after, topic=f"telemetry/{oid}-after").returncode == 0
    assert wait_until(lambda: series_len(gw, f"{oid}-after") == 100, 60), series_len(gw, f"{oid}-after")
    time.sleep(1)
    assert series_len(gw, oid) == 20  # each drained point once


def mosquitto_db_sessions(settings: Settings) -> set[str]:
    from jarvis import mosquitto_db
    from jarvis.stack import mosquitto

    return set(mosquitto_db.sessions(mosquitto.db_path(settings, settings.region_config("eu")).read_bytes()))


def test_wait_is_bounded_and_for_json_bodies(gw: dict[str, Any]) -> None:
    op = {"object_id": f"ctr:{gw['tag']}-wbad", "kind": "increment"}
    for bad in ("0", "31", "abc", "nan"):
        status, body, _ = curl(f"{gw['url']}/v1/ops?wait={bad}", json.dumps(op).encode(), key=gw["admin"])
        assert status == 400 and "0 < wait <= 30" in body["error"], (bad, body)
    status, body, _ = curl(f"{gw['url']}/v1/ops?wait=5", json.dumps(op).encode() + b"\n", key=gw["admin"],
                           ctype="application/x-ndjson")  # fmt: skip
    assert status == 400 and "wait applies to JSON bodies" in body["error"]
    assert read_value(gw["query"], op["object_id"]) is None  # nothing of a refused request was written


def test_bcounter_decrements_under_wait_get_the_origin_folds_decision_and_fold_everywhere(
    gw: dict[str, Any], settings: Settings
) -> None:
    """curl with ?wait=5: a decrement beyond eu's rights answers the fold's refusal and its reason,
    one within them is accepted (applied, with its dot), and GET /v1/ops/{op_id} then shows the
    accepted one folded in both regions."""
    oid = f"bc:{gw['tag']}-wait"
    wait_url = gw["url"] + "/v1/ops?wait=5"

    def post_wait(ops: list[dict[str, Any]]) -> tuple[int, Any]:
        status, body, _ = curl(wait_url, json.dumps(ops).encode(), key=gw["admin"])
        return status, body

    status, body = post_wait([{"object_id": oid, "kind": "increment", "args": {"n": 3}}])
    assert status == 200 and body["results"][0]["status"] == "accepted" and len(body["results"][0]["dot"]) == 4, body
    status, body = post_wait([{"object_id": oid, "kind": "decrement", "args": {"n": 5}}])
    assert status == 200, body  # written and decided: the verdict is in the result
    refused = body["results"][0]
    assert refused["status"] == "rejected", refused
    assert "insufficient rights in eu: holds 3, needs 5" in " ".join(refused["reasons"]), refused
    status, body = post_wait([{"object_id": oid, "kind": "decrement", "args": {"n": 2}},
                              {"object_id": f"ctr:{gw['tag']}-wait", "kind": "increment", "args": {"n": 1}}])  # fmt: skip
    assert status == 200, body
    sold, counted = body["results"]
    assert sold["status"] == "accepted" and sold["decision"] == "applied" and sold["dot"][0] == "eu", sold
    assert counted["status"] == "accepted" and "decision" not in counted, counted
    queries = {r: settings.region_config(r).query_url for r in ("eu", "us")}
    for url in queries.values():
        assert wait_until(lambda url=url: (read_value(url, oid) or {}).get("value") == 1, 30), read_value(url, oid)

    def where() -> dict[str, Any]:
        return curl(f"{gw['url']}/v1/ops/{sold['op_id']}", key=gw["reader"])[1]

    assert wait_until(lambda: sorted(where().get("folded_in", [])) == ["eu", "us"], 30), where()
    w = where()
    assert w["state"] == "accepted" and w["pending_in"] == [] and w["dot"] == sold["dot"], w
    # The refused decrement is never folded: GET says rejected, with the fold's reason.
    r = curl(f"{gw['url']}/v1/ops/{refused['op_id']}", key=gw["reader"])[1]
    assert r["state"] == "rejected" and "holds 3, needs 5" in " ".join(r["reasons"]) and "folded_in" not in r, r


def test_a_wait_the_fold_cannot_answer_in_is_a_202_pending_with_the_reason(gw: dict[str, Any], stack: Any) -> None:
    """eu's fold stopped: the verifier still accepts the decrement, the fold's decision cannot come,
    so the result is pending with that reason; once the fold is back, GET shows it decided."""
    oid = f"bc:{gw['tag']}-pending"
    assert post(gw, [{"object_id": oid, "kind": "increment", "args": {"n": 2}}])[0] == 200
    assert wait_until(lambda: (read_value(gw["query"], oid) or {}).get("value") == 2, 30)
    fold = next(p for p in stack.worker_procs() if p.name == "worker-fold-eu")
    fold.stop()
    try:
        status, body, _ = curl(gw["url"] + "/v1/ops?wait=2", json.dumps(
            [{"object_id": oid, "kind": "decrement", "args": {"n": 1}}]).encode(), key=gw["admin"])  # fmt: skip
    finally:
        fold.start()
    assert status == 202, body
    r = body["results"][0]
    assert r["status"] == "pending" and r["op_id"], r
    assert "accepted by the verifier; its origin fold has not decided within 2 s" in r["reasons"][0], r
    # It was written all the same: decided once the fold is back.
    assert wait_until(lambda: curl(f"{gw['url']}/v1/ops/{r['op_id']}", key=gw["reader"])[1].get("state") == "accepted", 120)
    assert wait_until(lambda: (read_value(gw["query"], oid) or {}).get("value") == 1, 30)
