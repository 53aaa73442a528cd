"""Every use of Faust's and aiokafka's private or undocumented internals, in one place.

The workers need a few things neither library offers publicly (each accessor says which and why).
An upgrade of faust-streaming or aiokafka may rename or move any of them, and a moved attribute
would not fail: it would quietly cost throughput or correctness (a fetch wait back at 1.5 s halved
the verifier's rate with only a warning). So `check_installed()` runs when every worker app is made
(streams/app.py) and raises FaustCompatError naming each attribute the installed versions lack, and
tests/unit/test_faust_compat.py runs the same checks, and the accessors, on the real objects.
Tested with faust-streaming 0.15.3, aiokafka 0.14.0.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

import aiokafka
import faust
from aiohttp.web import AppRunner
from aiokafka.consumer.fetcher import Fetcher
from faust.exceptions import NotReady
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Producer as FaustKafkaProducer
from faust.transport.producer import Producer as FaustProducer
from faust.transport.producer import ProducerBuffer
from faust.web.drivers.aiohttp import Web as FaustAiohttpWeb

from connectors.http_limits import REQUEST_LIMITS
from jarvis.errors import JarvisError


class FaustCompatError(JarvisError, RuntimeError):
    """The installed Faust or aiokafka no longer has an internal the workers rely on."""


def _assigned_on_self(cls: type, attr: str) -> bool:
    """Whether any method of `cls` (or the class body) assigns `self.<attr>`: how an attribute set
    only at run time (after connecting to Kafka) can be checked without Kafka."""
    if attr in getattr(cls, "__annotations__", {}) or attr in vars(cls):
        return True
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for tgt in node.targets for t in (tgt.elts if isinstance(tgt, ast.Tuple) else [tgt])]
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for t in targets:
            if (
                isinstance(t, ast.Attribute)
                and t.attr == attr
                and isinstance(t.value, ast.Name)
                and t.value.id == "self"
            ):
                return True
    return False


def _missing() -> list[str]:
    missing = []
    # shorten_fetch_wait: Faust's consumer -> its thread -> the aiokafka consumer -> its fetcher.
    for cls, attr in (
        (ThreadDelegateConsumer, "_thread"),
        (AIOKafkaConsumerThread, "_consumer"),
        (aiokafka.AIOKafkaConsumer, "_fetcher"),
        (Fetcher, "_fetch_max_wait_ms"),
    ):
        if not _assigned_on_self(cls, attr):
            missing.append(f"{cls.__module__}.{cls.__qualname__}.{attr}")
    # set_producer_buffer_limit
    if not isinstance(getattr(ProducerBuffer, "max_messages", None), int):
        missing.append("faust.transport.producer.ProducerBuffer.max_messages")
    if not _assigned_on_self(FaustProducer, "buffer"):
        missing.append("faust.transport.producer.Producer.buffer")
    # topic_metadata_known / fetch_topic_metadata
    if not callable(getattr(FaustKafkaProducer, "_ensure_producer", None)):
        missing.append("faust.transport.drivers.aiokafka.Producer._ensure_producer")
    if not _assigned_on_self(aiokafka.AIOKafkaProducer, "client"):
        missing.append("aiokafka.AIOKafkaProducer.client")
    if not callable(getattr(aiokafka.AIOKafkaProducer, "partitions_for", None)):
        missing.append("aiokafka.AIOKafkaProducer.partitions_for")
    # put_with_changelog
    if not isinstance(getattr(Collection, "data", None), property):
        missing.append("faust.tables.base.Collection.data")
    params = list(inspect.signature(Collection.send_changelog).parameters)
    if params[:4] != ["self", "partition", "key", "value"]:
        missing.append("faust.tables.base.Collection.send_changelog(partition, key, value)")
    # recovery_progress
    if not hasattr(Recovery, "in_recovery"):
        missing.append("faust.tables.recovery.Recovery.in_recovery")
    if not callable(getattr(Recovery, "active_remaining_total", None)):
        missing.append("faust.tables.recovery.Recovery.active_remaining_total")
    if not _assigned_on_self(faust.App, "rebalancing_count"):
        missing.append("faust.App.rebalancing_count")
    # set_web_idle_timeout
    if not _assigned_on_self(FaustAiohttpWeb, "_runner") or not _assigned_on_self(FaustAiohttpWeb, "web_app"):
        missing.append("faust.web.drivers.aiohttp.Web._runner/web_app")
    # disable_spinner
    if "spinner" not in getattr(faust.Worker, "__annotations__", {}):
        missing.append("faust.Worker.spinner")
    return missing


def check_installed() -> None:
    """Raise FaustCompatError naming every internal the installed Faust/aiokafka lack."""
    missing = _missing()
    if missing:
        raise FaustCompatError(
            "faust-streaming/aiokafka changed: missing "
            + ", ".join(missing)
            + " (see streams/faust_compat.py)"
        )


def _attr(obj: Any, attr: str) -> Any:
    """`obj.attr`, or FaustCompatError naming it: a worker must not run on without it."""
    try:
        return getattr(obj, attr)
    except AttributeError:
        raise FaustCompatError(f"{type(obj).__module__}.{type(obj).__qualname__} has no {attr}") from None


def shorten_fetch_wait(consumer: Any, ms: int) -> None:
    """Set aiokafka's fetch_max_wait_ms on the running fetcher of a Faust consumer.

    Faust builds its Kafka consumer with fetch_max_wait_ms=1500, fixed, and has no setting for it
    (streams/app.py says what it costs). aiokafka reads the value for every fetch request it builds,
    so setting it on the running fetcher takes effect at the next one. The fetcher exists once the
    consumer has started, i.e. when partitions are assigned."""
    kafka_consumer = _attr(_attr(consumer, "_thread"), "_consumer")
    fetcher = None if kafka_consumer is None else _attr(kafka_consumer, "_fetcher")
    if fetcher is None:
        raise FaustCompatError("the consumer's aiokafka fetcher does not exist yet: it is not started")
    _attr(fetcher, "_fetch_max_wait_ms")
    fetcher._fetch_max_wait_ms = ms


def set_producer_buffer_limit(app: faust.App, n: int) -> None:
    """Let Faust's producer buffer hold `n` records before it holds incoming messages back.

    Its limit (100, a class attribute, no setting) stops a consumer that sends bursts of records
    for ~150 ms per burst (streams/fold.py); the fold brakes on its own unacknowledged records."""
    buffer = _attr(app.producer, "buffer")
    _attr(buffer, "max_messages")
    buffer.max_messages = n


def put_with_changelog(table: Any, partition: int, key: bytes, value: bytes) -> Any:
    """Write a table entry and its changelog record outside an agent's event; returns the send's
    future (resolved when Kafka has the record).

    `table[key] = value` needs the current event to pick the changelog partition and attaches the
    send to that event's ack; the fold writes once per settle, from a timer, on the source
    partition, and waits for the sends itself. Faust's send_changelog goes through its send_soon
    buffer, which also keeps the producer's metadata of the changelog topic up to date (the router
    reads it)."""
    table.data[key] = value
    return table.send_changelog(partition, key, value)


def _kafka_producer(app: faust.App) -> Any:
    # Faust's producer wraps aiokafka's and has no public getter for it.
    return _attr(app.producer, "_ensure_producer")()


def producer_started(app: faust.App) -> bool:
    """Whether Faust's producer has made its aiokafka producer (it does when the worker starts)."""
    try:
        _kafka_producer(app)
    except NotReady:
        return False
    return True


def topic_metadata_known(app: faust.App, topic: str) -> bool:
    """Whether the producer's cached metadata has `topic`'s partitions.

    Faust's table router finds a key's partition through it, and fails with a TypeError deep in
    aiokafka when the topic is missing (it can be, for a changelog topic, for up to aiokafka's
    5-minute metadata refresh)."""
    return _attr(_kafka_producer(app), "client").cluster.partitions_for_topic(topic) is not None


async def fetch_topic_metadata(app: faust.App, topic: str) -> None:
    """Have the producer fetch `topic`'s metadata now; Faust has no public way."""
    await _kafka_producer(app).partitions_for(topic)


@dataclass(frozen=True)
class RecoveryProgress:
    rebalancing: bool
    rebalancing_count: int  # changes with every rebalance
    recovering: bool
    remaining: int  # changelog records still to read while recovering, else -1


def recovery_progress(app: faust.App) -> RecoveryProgress:
    """Where the worker is in rebalance and table recovery; Faust exposes these only as internals
    of its recovery service (streams/recovery_watchdog.py restarts a worker stalled there)."""
    recovery = app.tables.recovery
    recovering = bool(_attr(recovery, "in_recovery"))
    remaining = _attr(recovery, "active_remaining_total")() if recovering else -1
    return RecoveryProgress(bool(app.rebalancing), _attr(app, "rebalancing_count"), recovering, remaining)


def set_web_idle_timeout(app: faust.App, seconds: float) -> None:
    """Close a worker's HTTP connections that are idle, or have not sent a whole request, for
    `seconds`.

    aiohttp closes a connection whose request headers are incomplete, or that waits for its next
    request, once its keep-alive timeout passes (the timer starts when the connection opens and
    only a complete request resets it), so that one setting is both the header and the idle
    timeout. Faust builds its aiohttp AppRunner with the default (3,630 s: 100 slow-header
    connections were held as long as their clients liked) and has no setting for it, so the runner
    is replaced, before the server starts, by one with the timeout."""
    web = app.web
    _attr(web, "_runner")
    web._runner = AppRunner(_attr(web, "web_app"), access_log=None, keepalive_timeout=seconds, **REQUEST_LIMITS)


def disable_spinner(worker: faust.Worker) -> None:
    """Run a Faust worker without its terminal spinner.

    The spinner sets the root logger to DEBUG so that it spins on every record: every debug call in
    aiokafka and Faust then builds a LogRecord that the handler drops (py-spy: 7% of the fold's
    time). Faust has no option for it."""
    _attr(worker, "spinner")
    worker.spinner = None
