"""The fold's producer buffer: a flush before a commit waits for every earlier changelog record.

Faust's own buffer is the control: with a hand-over slower than its 100 ms patience, its flush
returns with records still in the buffer (the cause of the fold's lost kill -9 message).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from streams.producer_buffer import CommitSafeBuffer


class SlowChannel:
    """Stands in for the topic a record is published to: hands over after a delay, in order."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay)
        self.published.append(fut.n)


def _record(channel: SlowChannel, n: int) -> Any:
    return SimpleNamespace(n=n, message=SimpleNamespace(channel=channel))


async def _flush_after_puts(buffer_cls: type[ProducerBuffer], delay: float, n: int) -> tuple[int, int]:
    buffer = buffer_cls()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    channel = SlowChannel(delay)
    await buffer.start()
    try:
        for i in range(n):
            buffer.put(_record(channel, i))
        await buffer.flush()
        handed_at_flush = len(channel.published)
        # Records put after the flush began are not waited for.
        for i in range(n, n + 3):
            buffer.put(_record(channel, i))
        return handed_at_flush, n
    finally:
        buffer.pending = asyncio.Queue()  # let stop() finish without waiting on the extra records
        await buffer.stop()


def test_flush_waits_for_every_record_put_before_it() -> None:
    handed, n = asyncio.run(_flush_after_puts(CommitSafeBuffer, delay=0.15, n=4))
    assert handed == n


def test_fausts_own_flush_gives_up_on_a_slow_hand_over() -> None:
    handed, n = asyncio.run(_flush_after_puts(ProducerBuffer, delay=0.15, n=4))
    assert handed < n


def test_flush_with_nothing_pending_returns_at_once() -> None:
    handed, n = asyncio.run(_flush_after_puts(CommitSafeBuffer, delay=0.15, n=0))
    assert handed == n == 0


def test_a_failed_hand_over_does_not_block_the_flush() -> None:
    class FailingChannel(SlowChannel):
        async def publish_message(self, fut: Any, wait: bool = False) -> None:
            await asyncio.sleep(0.01)
            raise RuntimeError("broker gone")

    async def run() -> int:
        buffer = CommitSafeBuffer()
        buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
        await buffer.start()
        try:
            buffer.put(_record(FailingChannel(0), 0))
            await asyncio.wait_for(buffer.flush(), timeout=5)
            return buffer.handed_over
        finally:
            await buffer.stop()

    assert asyncio.run(run()) == 1
