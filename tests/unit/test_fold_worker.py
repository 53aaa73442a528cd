"""The fold's work on each message (streams/fold.py FoldWorker), without Kafka: messages in source
order are folded and held for the settle, one ahead of its turn sends the consumer back, a record
that cannot be folded becomes a rejected message whose delivery the settle waits for, a redelivery
changes nothing, and a settle Kafka refuses restarts the worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from jarvis.codec import decode_rejected, encode_batch, encode_verified
from jarvis.ops import Operation, OperationBatch
from pipelines.loader import pipelines
from streams.fold import FoldWorker
from streams.fold_state import FoldState
from tests.unit.test_fold_state import TableStandIn

HLC = 1_764_100_000_000 << 16
TOPIC = "jarvis.ops"


def verified(offset: int, n: int, object_id: str = "ctr:x", crdt_type: str = "pncounter") -> bytes:
    """A jarvis.ops message as the verifier writes it: ingress offset `offset`, n increments."""
    ops = [
        Operation(f"op-{offset}-{i}", object_id, crdt_type, "increment", {"n": 1}, "node", "eu", HLC + i)
        for i in range(n)
    ]
    batch = OperationBatch(f"b-{offset}", "node", "key", "eu", HLC, ops, b"\x01" * 32 * n, b"\x02" * 64)
    return encode_verified("eu", 2, offset, list(range(n)), [1.0] * n, encode_batch(batch))


@dataclass
class Message:
    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class Event:
    message: Message
    value: bytes


def event(offset: int, value: bytes) -> Event:
    return Event(Message(TOPIC, 2, offset), value)


@dataclass
class Consumer:
    """The consumer calls the fold makes besides reading messages, recorded."""

    earliest: int = 0
    seeks: list[tuple[TP, int]] = field(default_factory=list)

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.earliest for tp in partitions}

    async def seek(self, partition: TP, offset: int) -> None:
        self.seeks.append((partition, offset))

    def highwater(self, tp: TP) -> int | None:
        return None


@dataclass
class Fold:
    state: FoldState
    worker: FoldWorker
    consumer: Consumer
    rejected: list[tuple[bytes, bytes]]
    restarts: list[int]

    def value(self, object_id: str = "ctr:x") -> Any:
        st = self.state.peek(object_id)
        return None if st is None else st.value.value()


def fold() -> Fold:
    state = FoldState("eu", TableStandIn(), pipelines(), cache=None)  # type: ignore[arg-type]
    consumer, rejected, restarts = Consumer(), [], []

    async def send_rejected(key: bytes, value: bytes) -> asyncio.Future[None]:
        rejected.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def restart() -> None:
        restarts.append(1)

    return Fold(
        state, FoldWorker(state, lambda: consumer, send_rejected, restart), consumer, rejected, restarts
    )


def test_messages_are_folded_in_source_order_and_one_ahead_sends_the_consumer_back() -> None:
    f = fold()

    async def run() -> None:
        await f.worker.handle(event(10, verified(10, 3)))
        await f.worker.handle(event(12, verified(12, 5)))  # 11 not seen yet: not folded
        assert f.value() == 3
        assert f.consumer.seeks == [(TP(TOPIC, 2), 11)]
        await f.worker.handle(event(11, verified(11, 2)))
        await f.worker.handle(event(12, verified(12, 5)))

    asyncio.run(run())
    assert f.value() == 10
    assert f.state.order.expected[(TOPIC, 2)] == 13
    assert len(f.state.held) == 4  # every message waits for the settle, skipped ones too
    assert f.state.table.data == {}  # written once per settle, not per message


def test_offsets_gone_from_the_log_are_skipped_and_the_consumer_sent_to_the_earliest() -> None:
    f = fold()
    f.consumer.earliest = 20

    async def run() -> None:
        await f.worker.handle(event(10, verified(10, 1)))
        await f.worker.handle(event(25, verified(25, 1)))

    asyncio.run(run())
    assert f.consumer.seeks == [(TP(TOPIC, 2), 20)]
    assert f.state.order.expected[(TOPIC, 2)] == 20


def test_a_redelivered_message_changes_nothing() -> None:
    f = fold()

    async def run() -> None:
        await f.worker.handle(event(10, verified(10, 3)))
        await f.worker.on_revoked(None, set())
        await f.worker.on_assigned(None, set())
        assert f.state.recovering
        await f.worker.handle(event(10, verified(10, 3)))  # from the committed offset, again

    asyncio.run(run())
    assert f.value() == 3
    assert not f.state.recovering


def test_an_undecodable_record_is_rejected_under_where_it_was_read_and_its_send_awaited() -> None:
    f = fold()
    asyncio.run(f.worker.handle(event(10, b"\x00not avro")))
    [(key, value)] = f.rejected
    rec = decode_rejected(value)
    assert key == b"raw:jarvis.ops:2:10"
    assert rec.original == b"\x00not avro" and rec.reasons[0].startswith("undecodable record on jarvis.ops")
    assert len(f.state.inflight) == 1  # the settle acks the message only once Kafka has this record
    assert f.state.order.expected[(TOPIC, 2)] == 11


def test_an_operation_the_fold_cannot_apply_is_rejected_under_its_object() -> None:
    f = fold()

    async def run() -> None:
        await f.worker.handle(event(10, verified(10, 1)))
        await f.worker.handle(event(11, verified(11, 1, crdt_type="gcounter")))  # ctr:x is a pncounter

    asyncio.run(run())
    [(key, value)] = f.rejected
    assert key == b"ctr:x" and decode_rejected(value).op_id == "op-11-0"
    assert f.value() == 1


def test_a_settle_kafka_refuses_restarts_the_worker() -> None:
    f = fold()

    async def run() -> None:
        await f.worker.handle(event(10, verified(10, 1)))
        refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        refused.set_exception(RuntimeError("broker said no"))
        f.state.inflight.append(refused)

        class Acker:
            async def ack(self, event: object) -> bool:
                raise AssertionError("nothing may be acked")

        f.state.acker = Acker()
        await f.worker.settle()

    asyncio.run(run())
    assert f.restarts == [1]
