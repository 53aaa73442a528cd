"""Ghost MQTT sessions on a real Mosquitto (Debian's 2.0.11), the gateway's session policy and the
way out: a private broker per test, mosquitto_sub / mosquitto_pub as the clients we did not write.

A persistent session in the gateways' shared subscription that nobody reads takes every other
message (eclipse-mosquitto/mosquitto#1747); the broker's persistence file names it with its queue;
ending it (a clean-session connect) gives the remaining member every message again. An unconfigured
gateway instance drains such a session and runs clean, so it leaves none; a configured one keeps
its session across a stop. No Kafka: the bridge's write is replaced by a recorder that acknowledges.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.ingest.mqtt import Message, MqttBridge
from connectors.ingest.sessions import end_session
from jarvis import mosquitto_db
from jarvis.config import MQTT_BASE_PORT
from jarvis.mqtt_sessions import Ghost, client_id, ghosts, share_group
from pipelines.loader import pipelines
from tests.integration.pipeline_helpers import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (Path(MOSQUITTO).exists() and shutil.which("mosquitto_sub")), reason="mosquitto and mosquitto-clients"
    ),
]
REGION = "eu"
TOPIC = f"$share/{share_group(REGION)}/telemetry/#"


@dataclass
class Broker:
    port: int
    db: Path
    log: Path
    home: Path  # a JARVIS_HOME whose eu broker this is: mqtt/eu/ holds its persistence file

    def env(self) -> dict[str, str]:
        """The environment of a `jarvis` command that takes this broker for eu's."""
        offset = self.port - MQTT_BASE_PORT  # eu is region index 0
        return {**os.environ, "JARVIS_HOME": str(self.home), "JARVIS_PORT_OFFSET": str(offset), "JARVIS_REGIONS": "eu"}

    def sessions(self) -> dict[str, mosquitto_db.Session]:
        try:
            return mosquitto_db.sessions(self.db.read_bytes())
        except FileNotFoundError:
            return {}

    def ghosts(self) -> list[Ghost]:
        return ghosts(((c, s.queued) for c, s in self.sessions().items()), REGION, 1)

    def publish(self, lines: list[str]) -> None:
        argv = ["mosquitto_pub", "-p", str(self.port), "-q", "1", "-t", "telemetry/s", "-l"]
        subprocess.run(argv, input="\n".join(lines) + "\n", text=True, check=True, timeout=30)

    def left_session(self, instance: int) -> None:
        """A gateway instance that subscribed once with a persistent session and went away."""
        argv = ["mosquitto_sub", "-p", str(self.port), "-c", "-i", client_id(REGION, instance), "-q", "1", "-t", TOPIC, "-E"]
        subprocess.run(argv, check=True, timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    port = _free_port()
    home = tmp_path / "home"
    data = home / "mqtt" / REGION
    data.mkdir(parents=True)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        "\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence true",
                   f"persistence_location {data}/", "autosave_interval 1", f"user {getpass.getuser()}",
                   "log_dest stdout", "log_type all", ""])
    )  # fmt: skip
    log = tmp_path / "mosquitto.log"
    with log.open("w") as out:
        # Line-buffered, so the log shows each subscription as it happens (as the stack's brokers do).
        stdbuf = [b, "-oL"] if (b := shutil.which("stdbuf")) else []
        proc = subprocess.Popen([*stdbuf, MOSQUITTO, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: _answers(port), 10, 0.1), log.read_text()
        yield Broker(port, data / "mosquitto.db", log, home)
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Member:
    """The remaining gateway instance, played by mosquitto_sub with a persistent session."""

    def __init__(self, broker: Broker, tmp: Path, instance: int = 0) -> None:
        self.out = tmp / f"member-{instance}.txt"
        argv = ["mosquitto_sub", "-p", str(broker.port), "-c", "-i", client_id(REGION, instance), "-q", "1", "-t", TOPIC]
        self.proc = subprocess.Popen(argv, stdout=self.out.open("w"))
        # Subscribed once the broker logs it (mosquitto_sub says nothing).
        if not wait_until(lambda: f"{client_id(REGION, instance)} 1 {TOPIC}" in broker.log.read_text(), 10, 0.1):
            self.stop()
            raise AssertionError(f"mosquitto_sub did not subscribe: {broker.log.read_text()[-2000:]}")

    def got(self) -> list[str]:
        return self.out.read_text().splitlines()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_a_left_session_takes_every_other_message_until_it_is_ended(broker: Broker, tmp_path: Path) -> None:
    broker.left_session(7)
    member = Member(broker, tmp_path)
    try:
        first = [f"a{i}" for i in range(20)]
        broker.publish(first)
        # The failure: the offline session keeps its share, queued where no gateway reads it.
        assert wait_until(lambda: len(member.got()) == 10, 10, 0.1), member.got()
        time.sleep(0.5)
        assert len(member.got()) == 10
        # The broker's persistence file names it, with what it holds.
        assert wait_until(lambda: broker.ghosts() == [Ghost(client_id(REGION, 7), REGION, 7, 10)], 5, 0.2), broker.sessions()

        end_session("127.0.0.1", broker.port, client_id(REGION, 7), "anyone", "")
        assert wait_until(lambda: broker.ghosts() == [], 5, 0.2), broker.sessions()
        assert client_id(REGION, 0) in broker.sessions()  # the remaining member's own session stays

        second = [f"b{i}" for i in range(20)]
        broker.publish(second)
        assert wait_until(lambda: len(member.got()) == 30, 10, 0.1), member.got()
        assert member.got()[10:] == second  # every message, in order
    finally:
        member.stop()


def _bridge(broker: Broker, instance: int) -> tuple[MqttBridge, list[str]]:
    """The gateway's bridge with a recorder for the Kafka write: it acknowledges what it records."""
    writer: Any = SimpleNamespace(pipelines=pipelines())
    bridge = MqttBridge(writer, "127.0.0.1", broker.port, REGION, instance, "anyone", "", configured=1)
    got: list[str] = []

    async def handle(batch: list[Message]) -> None:
        got.extend(m.payload.decode() for m in batch)
        for m in batch:
            bridge.client.ack(m.mid, m.qos)

    bridge._seed = lambda: None  # type: ignore[method-assign]  # no Kafka to reload from
    bridge._handle = handle  # type: ignore[method-assign]
    return bridge, got


async def _until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.1)
    return bool(check())


def test_an_unconfigured_instance_drains_a_left_session_then_runs_clean_and_leaves_none(
    broker: Broker, tmp_path: Path
) -> None:
    broker.left_session(7)
    queued = [f"q{i}" for i in range(10)]
    broker.publish(queued)  # the only member: all ten are queued for the offline session
    assert wait_until(lambda: broker.ghosts() == [Ghost(client_id(REGION, 7), REGION, 7, 10)], 5, 0.2)
    bridge, got = _bridge(broker, 7)
    assert not bridge.persistent

    async def scenario() -> Member:
        task = asyncio.create_task(bridge.run())
        assert await _until(bridge.connected.is_set, 20), "the bridge did not connect"
        assert bridge.drained == 10 and got == queued  # written before it joined the group, in order
        member = Member(broker, tmp_path)
        await asyncio.to_thread(broker.publish, [f"s{i}" for i in range(20)])
        assert await _until(lambda: len(got) + len(member.got()) == 30, 10), (got, member.got())
        assert len(got) > 10 and member.got()  # both members of the group took a share
        task.cancel()  # a clean stop (SIGTERM stops the worker so)
        await asyncio.gather(task, return_exceptions=True)
        return member

    member = asyncio.run(scenario())
    try:
        # Its clean session ended with it: no ghost, and the remaining member now gets every message.
        assert wait_until(lambda: broker.ghosts() == [], 5, 0.2), broker.sessions()
        before = len(member.got())
        after = [f"t{i}" for i in range(20)]
        broker.publish(after)
        assert wait_until(lambda: len(member.got()) == before + 20, 10, 0.1), member.got()
        assert member.got()[before:] == after
    finally:
        member.stop()


def test_a_configured_instance_keeps_its_session_so_a_stop_loses_nothing(broker: Broker) -> None:
    while_down = [f"d{i}" for i in range(10)]

    async def run_once(until: Any) -> list[str]:
        bridge, got = _bridge(broker, 0)
        assert bridge.persistent
        task = asyncio.create_task(bridge.run())
        assert await _until(bridge.connected.is_set, 20), "the bridge did not connect"
        assert await _until(lambda: until(got), 10), got
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return got

    asyncio.run(run_once(lambda got: True))
    assert wait_until(lambda: client_id(REGION, 0) in broker.sessions(), 5, 0.2)
    broker.publish(while_down)  # queued for the configured instance's session while it is down
    assert wait_until(lambda: broker.sessions()[client_id(REGION, 0)].queued == 10, 5, 0.2)
    assert broker.ghosts() == []  # a configured instance's session is not a ghost
    assert asyncio.run(run_once(lambda got: len(got) >= 10)) == while_down


def jarvis(broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "jarvis.cli", *args]
    return subprocess.run(argv, env=broker.env(), capture_output=True, text=True, timeout=60)


def test_drop_session_ends_a_ghost_and_refuses_a_configured_instance(broker: Broker, tmp_path: Path) -> None:
    broker.left_session(7)
    member = Member(broker, tmp_path)
    try:
        broker.publish([f"a{i}" for i in range(8)])
        assert wait_until(lambda: broker.ghosts() == [Ghost(client_id(REGION, 7), REGION, 7, 4)], 5, 0.2)
        member.stop()

        r = jarvis(broker, "ingest", "drop-session", "--region", REGION, "--instance", "0")
        assert r.returncode == 1 and "configured ingest instance" in r.stderr, r.stderr
        r = jarvis(broker, "ingest", "drop-session", "--region", REGION, "--instance", "7")
        assert r.returncode == 0, r.stderr
        assert "ended MQTT session jarvis-ingest-eu-7" in r.stderr and "4 queued message(s) discarded" in r.stderr

        assert wait_until(lambda: broker.ghosts() == [], 5, 0.2), broker.sessions()
        assert client_id(REGION, 0) in broker.sessions()  # refused: the configured session stays
    finally:
        member.stop()
