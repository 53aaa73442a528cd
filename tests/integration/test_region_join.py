"""A third region joins a running two-region stack from a backup plus MirrorMaker 2 (issue 23 item 5).

Its own stack (own home and ports: PostgreSQL, Redis and Kafka included), eu and us first: writes of
every CRDT type in both, a backup, more writes, then `jarvis regions join --region ap`. Asserted:
ap's digests agree with eu's and us's; MirrorMaker copied into ap exactly the records above the
backup's positions, none of the operations written before the backup (read back from ap's Kafka,
by operation id) and every one written after it; `regions status` counts no lag into ap; and
writes made in ap after the join reach eu and us.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors import api_client
from connectors.backup.container import new_key
from connectors.kafka_clients import confluent_conf
from connectors.kafka_io import records_to_end
from connectors.regions import agreement, digests
from connectors.sdk import Client
from jarvis import topics
from jarvis.codec import decode_verified
from jarvis.config import Settings
from jarvis.regions_join import archiver_group
from tests.integration.pipeline_helpers import wait_until
from tests.integration.test_pipeline import PREFIXES, random_op

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OFFSET = 2000  # every port of this stack, clear of the main stack's and test_three_regions' (1000)


def env_of(home: Path, regions: str, key: str) -> dict[str, str]:
    return {
        "JARVIS_HOME": str(home), "JARVIS_REGIONS": regions, "JARVIS_PORT_OFFSET": str(OFFSET),
        "JARVIS_POSTGRES_PORT": str(15432 + OFFSET), "JARVIS_REDIS_PORT": str(16379 + OFFSET),
        "JARVIS_BACKUP_KEY": key,
    }  # fmt: skip


def jarvis(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jarvis.cli", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **env},
    )  # fmt: skip


def settings_of(env: dict[str, str]) -> Settings:
    base = Settings.from_env()
    return dataclasses.replace(
        base, home=Path(env["JARVIS_HOME"]), region_names=tuple(env["JARVIS_REGIONS"].split(",")),
        region=env["JARVIS_REGIONS"].split(",")[0], port_offset=OFFSET,
        postgres_port=15432 + OFFSET, redis_port=16379 + OFFSET, postgres_dsn_override=None,
        redis_url_override=None, kafka_bootstrap=None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack_home():
    # Not under pytest's 0700 basetemp: PostgreSQL runs as user postgres, which must enter the home.
    home = Path(tempfile.mkdtemp(prefix="jarvis-region-join-"))
    home.chmod(0o755)
    key = new_key()
    env2, env3 = env_of(home, "eu,us", key), env_of(home, "eu,us,ap", key)
    up = jarvis("stack", "up", env=env2)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield home, env2, env3
    finally:
        jarvis("stack", "down", env=env3, timeout=300)  # ap's parts too, if it joined
        shutil.rmtree(home, ignore_errors=True)


class Writer:
    """Objects of every type written from a region, the ids of what was sent."""

    def __init__(self, s: Settings, region: str, objects: list[tuple[str, str]], seed: int) -> None:
        self.sent: list[str] = []
        self.region = region
        self.client = Client(
            region=region, node_id=f"join-{region}-{uuid.uuid4().hex[:6]}", settings=s, dev_trust=True,
            on_op=lambda op: self.sent.append(op.op_id),
        )  # fmt: skip
        self.objects = objects
        self.rng = random.Random(seed)

    def write(self, rounds: int, step0: int = 0) -> list[str]:
        before = len(self.sent)
        for step in range(step0, step0 + rounds):
            for oid, t in self.objects:
                random_op(self.client, self.rng, oid, t, step)
        self.client.flush()
        return self.sent[before:]


def agree(s: Settings) -> bool:
    ok, _ = agreement(digests(s))
    return ok


def ends(s: Settings, region: str, topic: str) -> dict[int, int]:
    c = Consumer({**confluent_conf(s, region=region), "group.id": uuid.uuid4().hex})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def archived_to_end(s: Settings, region: str) -> bool:
    """The region's archiver has committed up to the end of its own jarvis.ops."""
    admin = AdminClient(confluent_conf(s, region=region))
    group = archiver_group(region)
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
    committed = {tp.partition: tp.offset for tp in res.topic_partitions or [] if tp.topic == topics.OPS}
    return all(committed.get(p, 0) >= e for p, e in ends(s, region, topics.OPS).items())


def op_ids_in(s: Settings, region: str, topic: str) -> list[str]:
    """Every operation id in `topic` of `region`, read from the beginning to the end."""
    end = ends(s, region, topic)
    todo = {p for p, e in end.items() if e > 0}
    c = Consumer({**confluent_conf(s, region=region), "group.id": uuid.uuid4().hex,
                  "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    out: list[str] = []
    try:
        for m in records_to_end(c, topic, end, todo):
            out += [op.op_id for op in decode_verified(m.value()).ops]
    finally:
        c.close()
    assert not todo, f"{region} {topic}: partitions {todo} not read to their end"
    return out


def test_a_region_joins_from_a_backup_and_converges_without_replaying_it(stack_home) -> None:
    home, env2, env3 = stack_home
    s2, s3 = settings_of(env2), settings_of(env3)
    run = uuid.uuid4().hex[:6]
    objects = [(f"{p}:join-{run}-{i}", t) for p, t in PREFIXES.items() for i in range(4)]
    writers = {r: Writer(s2, r, objects, seed=i) for i, r in enumerate(("eu", "us"))}

    before = {r: set(w.write(rounds=6)) for r, w in writers.items()}
    assert wait_until(lambda: agree(s2), 120), "eu and us never agreed before the backup"
    for r in ("eu", "us"):
        assert wait_until(lambda r=r: archived_to_end(s2, r), 120), f"{r}'s archiver never reached the end"
    at_backup = {r: sum(ends(s2, r, topics.OPS).values()) for r in ("eu", "us")}
    dest = home / "backups"
    made = jarvis("backup", "create", "--to", str(dest), env=env2, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]

    after = {r: set(w.write(rounds=3, step0=6)) for r, w in writers.items()}
    for w in writers.values():
        w.client.close()

    joined = jarvis("regions", "join", "--region", "ap", "--from-backup", str(dest), "--json", env=env3, timeout=1200)
    assert joined.returncode == 0, joined.stderr[-4000:]
    result = json.loads(joined.stdout)
    print(joined.stderr[-3000:])
    print(json.dumps({k: result[k] for k in ("seconds", "backup_ops", "objects", "flows")}, indent=2))
    assert result["agree"] is True
    assert wait_until(lambda: agree(s3), 60), "eu, us and ap do not agree"

    # What MirrorMaker brought into ap, read back from ap's Kafka: every record above the backup's
    # positions and nothing below them.
    flows = {f["source"]: f for f in result["flows"]}
    for src in ("eu", "us"):
        f = flows[src]
        assert f["start"] == at_backup[src], (src, f, at_backup)  # the archiver stood at the end
        assert f["copied_records"] == f["source_records"] - f["start"], f
        copied = op_ids_in(s3, "ap", topics.mirrored(src))
        assert len(copied) == f["copied_ops"]
        assert not before[src] & set(copied), f"{src}: operations from before the backup copied into ap"
        assert after[src] <= set(copied), f"{src}: operations written after the backup missing in ap"
        assert f["already_in_backup"] == 0
    assert result["backup_ops"] >= sum(len(b) for b in before.values())

    # No lag into ap once the mirrors are counted from where they began.
    status = jarvis("regions", "status", "--json", env=env3, timeout=120)
    st = json.loads(status.stdout)
    assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-2000:]
    assert all(lag["records"] == 0 for lag in st["lag"] if lag["target"] == "ap"), st["lag"]

    # ap writes; eu and us fold it.
    ap = Client(region="ap", node_id=f"join-ap-{run}", settings=s3, dev_trust=True)
    counter = f"ctr:join-{run}-ap"
    for _ in range(25):
        ap.counter(counter).increment(2)
    random_op(ap, random.Random(7), objects[0][0], objects[0][1], 99)
    ap.flush()
    ap.close()
    for r in ("eu", "us", "ap"):
        q = s3.region_config(r).query_url
        assert wait_until(lambda q=q: _value(s3, q, counter) == 50, 90), f"{r} never saw ap's writes"
    assert wait_until(lambda: agree(s3), 90), "the regions differ after ap's writes"


def _value(s: Settings, query_url: str, object_id: str) -> object:
    """The object's value from a query API of this test's stack (its CA, its admin key)."""
    try:
        with api_client.urlopen(f"{query_url}/v1/objects/{urllib.parse.quote(object_id)}", 5, settings=s) as r:
            return json.loads(r.read())["value"]
    except (OSError, ValueError, KeyError):  # not there yet (404) or the worker still starting
        return None
