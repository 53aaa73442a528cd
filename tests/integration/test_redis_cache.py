"""The fold keeps every changed object's latest view in Redis and announces each change there."""

from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest
import redis

from connectors import api_client
from connectors.redis_cache import changes_channel, index_key, obj_key, watch_channel
from connectors.sdk import Client
from tests.integration.cli_helpers import curl_tls
from tests.integration.pipeline_helpers import get_json, object_url, wait_until

pytestmark = pytest.mark.integration


def test_changed_objects_are_in_redis_with_notifications(stack) -> None:
    s = stack.settings
    region = "eu"
    query_url = s.region_config(region).query_url
    r = redis.Redis.from_url(s.redis_url)
    run = uuid.uuid4().hex[:8]
    watched = f"ctr:redis-{run}-0"
    ids = [f"ctr:redis-{run}-{i}" for i in range(50)] + [f"members:redis-{run}"]
    pubsub = r.pubsub()
    pubsub.subscribe(changes_channel(region), watch_channel(region, watched))
    messages: list[dict] = []
    listening = threading.Event()

    def listen() -> None:
        while not listening.is_set():
            m = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m:
                messages.append(m)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    client = Client(region=region, node_id="redis-test", dev_trust=True)
    for n, oid in enumerate(ids[:-1]):
        client.counter(oid).increment(n + 1)
    client.orset(ids[-1]).add("ada")
    client.flush()
    client.counter(watched).increment(100)  # a second change of the watched object
    client.flush()

    def views() -> dict[str, object]:
        raw = r.mget([obj_key(region, oid) for oid in ids])
        return {oid: None if v is None else orjson.loads(v) for oid, v in zip(ids, raw, strict=True)}

    expected = {oid: n + 1 for n, oid in enumerate(ids[:-1])} | {watched: 101}
    assert wait_until(
        lambda: {oid: (v or {}).get("value") for oid, v in views().items() if oid != ids[-1]} == expected, 60
    ), views()
    time.sleep(1)  # the last notifications
    listening.set()
    listener.join(timeout=5)
    cached = views()
    for oid in (watched, ids[-1]):  # the same view the query API serves
        # Waited for: on a stack just started, the query router once answered 500 for a few seconds.
        assert wait_until(lambda oid=oid: get_json(object_url(query_url, oid)) == (200, cached[oid]), 30), (
            get_json(object_url(query_url, oid))
        )
    assert cached[ids[-1]]["value"] == ["ada"]
    assert set(ids) <= {i.decode() for i in r.zrangebylex(index_key(region), f"[ctr:redis-{run}", "+")} | {
        i.decode() for i in r.zrangebylex(index_key(region), f"[members:redis-{run}", "+")
    }
    changed = {m["data"].decode() for m in messages if m["channel"].decode() == changes_channel(region)}
    assert set(ids) <= changed
    watch = [orjson.loads(m["data"]) for m in messages if m["channel"].decode() == watch_channel(region, watched)]
    assert watch and watch[-1] == cached[watched]  # the payload is the view; the last one is the latest
    assert all(w["object_id"] == watched for w in watch)


def _curl_json(url: str) -> tuple[int, object]:
    """GET with curl (a client we did not write): status and JSON body."""
    import json
    import subprocess

    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *curl_tls(), *_curl_key(), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body) if body else None


def _curl_key() -> list[str]:
    return ["-H", f"Authorization: Bearer {api_client.api_key()}"]


def test_listing_pages_reach_ids_past_latin1_and_never_leave_the_prefix(stack) -> None:
    # The upper bound of a page was prefix + "\xff", sent to Redis as UTF-8 (c3 bf): ids whose
    # character after the prefix lies past U+00FF sorted above it and were never listed; a cursor
    # before the prefix started the page outside it.
    import urllib.parse

    s = stack.settings
    query_url = s.region_config("eu").query_url
    run = uuid.uuid4().hex[:8]
    prefix = f"ctr:list-{run}-"
    ids = sorted([f"{prefix}{c}{i}" for c in ("a", "é", "Ω", "中", "😀") for i in range(3)])
    client = Client(region="eu", node_id="list-test", dev_trust=True)
    for oid in ids:
        client.counter(oid).increment(1)
    client.counter(f"ctr:list-{run}.after").increment(1)  # sorts right after the prefix's range
    client.flush()

    def listed(after: str | None = None, limit: int = 4) -> list[str]:
        got: list[str] = []
        while True:
            q = {"prefix": prefix, "limit": limit, **({"after": after} if after else {})}
            status, body = _curl_json(f"{query_url}/v1/objects?{urllib.parse.urlencode(q)}")
            assert status == 200, body
            got += [o["object_id"] for o in body["objects"]]  # type: ignore[index]
            after = body["next"]  # type: ignore[index]
            if not after:
                return got

    assert wait_until(lambda: listed() == ids, 60), listed()
    assert listed(after="ctr:") == ids  # a cursor before the prefix: from the prefix's first id
    assert listed(after=ids[6]) == ids[7:]
