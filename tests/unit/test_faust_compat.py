"""streams/faust_compat.py against the installed faust-streaming and aiokafka: the start-up check
passes, names what an upgrade would have moved, and each accessor works on the real objects
(made without Kafka: nothing here connects)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import aiokafka
import faust
import pytest
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.subscription_state import SubscriptionState

from jarvis.config import Settings
from streams import faust_compat
from streams.app import make_app
from streams.faust_compat import FaustCompatError


def _app() -> faust.App:
    return faust.App("compat-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def test_the_installed_versions_have_every_internal_the_workers_use() -> None:
    faust_compat.check_installed()


def test_a_moved_internal_stops_the_start_naming_the_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    class UpgradedFetcher:  # as if aiokafka had renamed _fetch_max_wait_ms
        def __init__(self) -> None:
            self._max_wait = 1500

    monkeypatch.setattr(faust_compat, "Fetcher", UpgradedFetcher)
    with pytest.raises(FaustCompatError, match=r"UpgradedFetcher\._fetch_max_wait_ms"):
        faust_compat.check_installed()


def test_make_app_refuses_to_build_a_worker_on_a_moved_internal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(faust_compat.ProducerBuffer, "max_messages", None)
    s = dataclasses.replace(Settings.from_env(), home=tmp_path)
    with pytest.raises(FaustCompatError, match=r"ProducerBuffer\.max_messages"):
        make_app(s, "verifier", s.region_names[0])


def test_the_fetch_wait_is_set_on_the_running_fetcher() -> None:
    async def run() -> int:
        app = _app()
        consumer = app.consumer
        with pytest.raises(FaustCompatError, match="not started"):
            faust_compat.shorten_fetch_wait(consumer, 100)
        # What the consumer thread's start does, without its connection to Kafka.
        kafka_consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        client = aiokafka.AIOKafkaClient(bootstrap_servers="127.0.0.1:1")
        fetcher = Fetcher(client, SubscriptionState(), fetch_max_wait_ms=1500)
        kafka_consumer._fetcher = fetcher
        consumer._thread._consumer = kafka_consumer
        try:
            faust_compat.shorten_fetch_wait(consumer, 100)
            return fetcher._fetch_max_wait_ms
        finally:
            await fetcher.close()

    assert asyncio.run(run()) == 100


def test_the_producer_buffer_limit_is_raised() -> None:
    app = _app()
    faust_compat.set_producer_buffer_limit(app, 20_000)
    assert app.producer.buffer.max_messages == 20_000
    assert faust.transport.producer.ProducerBuffer.max_messages == 100  # other apps keep Faust's


def test_a_table_write_outside_an_event_sets_the_value_and_sends_its_changelog_record() -> None:
    async def run() -> tuple[Any, Any]:
        app = _app()
        table = app.Table("objects", partitions=4, key_type=bytes, value_type=bytes)
        future = faust_compat.put_with_changelog(table, 3, b"ctr:a", b"state")
        return table, future

    table, future = asyncio.run(run())
    assert table.data[b"ctr:a"] == b"state"
    assert isinstance(future, faust.types.FutureMessage)
    assert (future.message.channel.get_topic_name(), future.message.partition) == (
        "compat-test-objects-changelog",
        3,
    )
    assert (future.message.key, future.message.value) == (b"ctr:a", b"state")


def test_an_unstarted_app_has_no_producer_and_no_recovery_in_progress() -> None:
    async def run() -> tuple[bool, faust_compat.RecoveryProgress]:
        app = _app()
        return faust_compat.producer_started(app), faust_compat.recovery_progress(app)

    started, progress = asyncio.run(run())
    assert started is False
    assert progress == faust_compat.RecoveryProgress(False, 0, False, -1)


def test_the_worker_runs_without_its_spinner() -> None:
    async def run() -> Any:
        worker = faust.Worker(_app(), quiet=True, loop=asyncio.get_running_loop())
        assert worker.spinner is not None  # Faust's default
        faust_compat.disable_spinner(worker)
        return worker.spinner

    assert asyncio.run(run()) is None


def test_the_web_server_closes_connections_idle_or_without_a_whole_request_after_its_timeout(
    tmp_path: Path,
) -> None:
    """On the real aiohttp server Faust builds: a client that sends half a request line is cut."""

    async def run() -> tuple[bytes, float]:
        app = faust.App("web-timeout-test", broker="kafka://127.0.0.1:1", store="memory://", web_port=1)
        faust_compat.set_web_idle_timeout(app, 0.5)
        runner = app.web._runner
        await runner.setup()
        site = faust.web.drivers.aiohttp.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/objects/x HTTP/1.1\r\nHost: a\r\n")  # headers never finished
        await writer.drain()
        # The server, not this client, ends the exchange: b"" (its close) before wait_for gives up.
        got = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
        await runner.cleanup()
        return got

    assert asyncio.run(run()) == b""
