"""OIDC Bearer tokens at a real ingest gateway on the real stack: a gateway process (`jarvis worker
ingest --instance 7`, beside the stack's own) started with JARVIS_OIDC_ISSUER naming a real issuer
(oidc-provider under node). A token whose role may write has its operation accepted and folded,
recorded as the token's principal; a read-only role's token gets 403; a bad token 401 with its
reason, in the access audit like a bad key's; API keys still work there."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from connectors import api_client
from jarvis.roles import web_port
from tests import oidc_issuer
from tests.integration.cli_helpers import curl, jarvis, ok
from tests.integration.pipeline_helpers import read_value, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not oidc_issuer.INSTALLED, reason=oidc_issuer.NOT_INSTALLED)]

UID = uuid.uuid4().hex[:6]
AUD = f"https://jarvis.test/{UID}"
INSTANCE = 7  # its own port and node id beside the stack's gateway (instance 0)
WRITER, READER = f"oidc-writer-{UID}", f"oidc-reader-{UID}"


def token(issuer: str, client_id: str) -> str:
    return asyncio.run(oidc_issuer.access_token(issuer, client_id, AUD))


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    s = stack.settings
    ok(jarvis("auth", "role", "set", WRITER, "--read", f"ctr:{UID}*", "--write", "ctr:*"))
    ok(jarvis("auth", "role", "set", READER, "--read", "ctr:*"))
    node = f"ingest-eu-{INSTANCE}"
    ok(jarvis("keys", "create", node, "--trust"))  # its batches must verify, as the stack's gateway's do
    clients = [{"id": "writer-app", "role": WRITER, "alg": "ES256"}, {"id": "reader-app", "role": [READER]}]
    log = tmp_path_factory.mktemp("oidc") / "gateway.log"
    with oidc_issuer.running(AUD, clients) as issuer, log.open("w") as out:
        env = {**os.environ, "JARVIS_OIDC_ISSUER": issuer, "JARVIS_OIDC_AUDIENCE": AUD}
        proc = subprocess.Popen(
            [sys.executable, "-m", "jarvis.cli", "worker", "ingest", "--region", "eu", "--instance", str(INSTANCE)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = s.http_url(web_port(s, "ingest", "eu", INSTANCE))
            assert wait_until(lambda: curl(url + "/healthz")[0] == 200, 60), log.read_text()[-2000:]
            yield {"issuer": issuer, "ingest": url, "query": s.region_config("eu").query_url,
                   "admin": api_client.api_key(s), "log": log}  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(30)
            no_mqtt_session_left(s, "eu", INSTANCE)


def no_mqtt_session_left(s: Any, region: str, instance: int) -> None:
    """The extra gateway is not a configured instance, so it ran with a clean MQTT session, which
    the broker ended with it (jarvis/mqtt_sessions.py). Left in the region's shared subscription,
    a persistent one would take every other message of later tests: end it then, and fail."""
    from connectors.ingest.sessions import end_session
    from jarvis.stack import mosquitto

    r = s.region_config(region)
    left = lambda: [g for g in mosquitto.ghost_sessions(s, r) if g.instance == instance]  # noqa: E731
    # The broker saves its sessions every second: a session that is still there after a few is left.
    if wait_until(lambda: not left(), 5):
        return
    end_session(r.host, r.mqtt_port, left()[0].client_id, mosquitto.BRIDGE_USER, mosquitto.bridge_secret(s))
    raise AssertionError(f"the extra gateway left a persistent MQTT session on {region}'s broker (now ended)")


def post(world: dict[str, Any], key: str, object_id: str, n: int = 1) -> tuple[int, Any]:
    op = {"object_id": object_id, "kind": "increment", "args": {"n": n}}
    status, body, _ = curl(world["ingest"] + "/v1/ops", key, method="POST", body=json.dumps(op).encode())
    return status, body


def test_a_writers_token_has_its_operation_folded_as_its_principal(world) -> None:
    writer = token(world["issuer"], "writer-app")
    # The role was set a moment ago: the gateway's view of roles takes up to a second to have it.
    assert wait_until(lambda: post(world, writer, f"ctr:{UID}-probe")[0] == 200, 10)
    status, body = post(world, writer, f"ctr:{UID}-a", 5)
    assert status == 200 and body["results"][0]["status"] == "accepted", body
    op_id = body["results"][0]["op_id"]
    assert wait_until(lambda: read_value(world["query"], f"ctr:{UID}-a", world["admin"]) == 5, 60)
    status, op, _ = curl(world["ingest"] + f"/v1/ops/{op_id}", writer)
    assert status == 200 and op["principal"] == "oidc:writer-app", op


def test_a_read_only_token_gets_403_and_a_bad_one_401_with_its_reason(world) -> None:
    reader = token(world["issuer"], "reader-app")
    status, body = post(world, reader, f"ctr:{UID}-b")
    assert status == 403 and "may not write" in body["results"][0]["reasons"][0], body
    writer = token(world["issuer"], "writer-app")
    head, payload, sig = writer.split(".")
    # One character of the signature changed (the first: the last carries padding bits).
    forged = f"{head}.{payload}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"
    status, body = post(world, forged, f"ctr:{UID}-b")
    assert status == 401 and "invalid token" in body["error"], body
    time.sleep(1)
    assert read_value(world["query"], f"ctr:{UID}-b", world["admin"]) is None  # nothing was written

    def audited() -> bool:
        out = ok(jarvis("audit", "access", "--since", "15m", "--json"))
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return any(r["kind"] == "denied" and r["status"] == 401 and "invalid token" in (r.get("reason") or "")
                   for r in rows)  # fmt: skip

    assert wait_until(audited, 60, interval=2)


def test_api_keys_still_work_beside_tokens(world) -> None:
    status, body = post(world, world["admin"], f"ctr:{UID}-c", 2)
    assert status == 200 and body["results"][0]["status"] == "accepted", body
    assert wait_until(lambda: read_value(world["query"], f"ctr:{UID}-c", world["admin"]) == 2, 60)
