"""A Faust producer buffer whose flush waits for every message enqueued before it began.

Faust writes table changes (changelog records) into its ProducerBuffer and, before committing
source offsets, flushes that buffer and then the Kafka producer. Faust 0.15.3's flush gives up as
soon as 100 ms pass without a message leaving the buffer, and it does not count the message being
handed to aiokafka at that moment, so under load an offset could be committed before the
changelog record of the state it produced: a `kill -9` then lost that message's effect.

Here every message gets a sequence number when it is put in the buffer; a flush waits until the
buffer has handed over every message numbered before the flush started (messages the agent keeps
adding meanwhile are not waited for, so a flush is bounded by the buffer's size), then the caller
flushes aiokafka, which waits for those records' acknowledgements.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport.producer import ProducerBuffer
from faust.types import FutureMessage

log = logging.getLogger(__name__)

SLOW_FLUSH_WARNING = 10.0  # seconds a flush may wait before we say so in the log


class CommitSafeBuffer(ProducerBuffer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.enqueued = 0
        self.handed_over = 0
        self._handed = asyncio.Event()

    def put(self, fut: FutureMessage) -> None:
        if self.app is not None and self.app.conf.producer_threaded:
            raise RuntimeError("CommitSafeBuffer does not support producer_threaded")
        super().put(fut)
        self.enqueued += 1

    async def _send_pending(self, fut: FutureMessage) -> None:
        try:
            await super()._send_pending(fut)
        finally:
            # Counted even when the send failed: the failure reaches the message's future, and a
            # flush must not wait for ever on it.
            self.handed_over += 1
            self._handed.set()

    async def flush(self) -> None:
        hook = getattr(self.app, "before_producer_flush", None)
        if hook is not None:
            hook()  # may enqueue more records, which this flush then waits for
        target = self.enqueued
        waited = 0.0
        while self.handed_over < target:
            if self.state != "running":
                # Stopping: the task that hands messages over may be gone; Faust's own flush
                # raises if anything is left.
                await super().flush()
                return
            self._handed.clear()
            try:
                await asyncio.wait_for(self._handed.wait(), timeout=1.0)
            except TimeoutError:
                waited += 1.0
                if waited % SLOW_FLUSH_WARNING == 0:
                    log.warning(
                        "producer flush waiting %.0f s: %d of %d messages handed over",
                        waited,
                        self.handed_over,
                        target,
                    )

    def stats(self) -> dict[str, Any]:
        return {"enqueued": self.enqueued, "handed_over": self.handed_over, "size": self.size}
