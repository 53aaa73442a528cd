"""The fold's held-back table writes: readers and the fold always see the newest state, and a
flush puts every changed object into the table and its changelog on the source partition."""

from __future__ import annotations

import asyncio
from typing import Any

from jarvis.materialize import ObjectState, apply
from jarvis.ops import Dot, Operation
from pipelines.loader import object_factory, pipelines
from streams.fold import FoldState


class TableStandIn:
    """The two parts of a Faust table the fold touches: `data` and `send_changelog`, plus reads."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[tuple[int, bytes, bytes]] = []

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def __iter__(self) -> Any:
        return iter(self.data)

    def send_changelog(self, partition: int, key: bytes, value: bytes) -> None:
        self.changelog.append((partition, key, value))


def _state() -> tuple[FoldState, TableStandIn]:
    table = TableStandIn()
    return FoldState("eu", table, pipelines(), cache=None), table  # type: ignore[arg-type]


def _increment(st: ObjectState, offset: int, n: int = 1) -> None:
    op = Operation(f"op-{offset}", st.object_id, "pncounter", "increment", {"n": n}, "n1", "eu", offset)
    assert apply(st, op, Dot("eu", 2, offset, 0))


def test_changed_objects_are_read_back_before_they_reach_the_table() -> None:
    fold, table = _state()
    st = object_factory(pipelines())("ctr:a", "pncounter")
    _increment(st, 1)
    fold.changed("ctr:a", 2, st)
    fold.live.clear()  # as after LIVE_LIMIT: the held-back state must still be found
    assert table.data == {}
    assert fold.load("ctr:a") is st
    assert fold.peek("ctr:a").value.value() == 1
    assert fold.object_ids() == {"ctr:a"}


def test_a_flush_writes_each_changed_object_once_on_its_source_partition() -> None:
    fold, table = _state()
    st = object_factory(pipelines())("ctr:a", "pncounter")
    for offset in range(1, 6):
        _increment(st, offset)
        fold.changed("ctr:a", 2, st)
    assert fold.write_unwritten() == 1
    assert [(p, k) for p, k, _ in table.changelog] == [(2, b"ctr:a")]
    assert ObjectState.from_bytes(table.data[b"ctr:a"]).value.value() == 5
    assert fold.unwritten == {}
    assert fold.write_unwritten() == 0
    fold.live.clear()
    assert fold.load("ctr:a").value.value() == 5


def test_settle_acks_messages_only_after_their_changelog_records_are_delivered() -> None:
    import asyncio

    async def run() -> list[str]:
        fold, table = _state()
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acked: list[str] = []

        class Acker:
            async def ack(self, event: str) -> bool:
                acked.append(event)
                return True

        table.send_changelog = lambda p, k, v: delivered  # type: ignore[method-assign]
        fold.acker = Acker()
        st = object_factory(pipelines())("ctr:a", "pncounter")
        _increment(st, 1)
        fold.held.append("event-1")
        fold.changed("ctr:a", 2, st)
        settling = asyncio.ensure_future(fold.settle())
        await asyncio.sleep(0.05)
        assert acked == [] and b"ctr:a" in table.data  # written, not yet acknowledged by Kafka
        delivered.set_result(None)
        await settling
        return acked

    assert asyncio.run(run()) == ["event-1"]


def test_settle_records_how_far_each_source_partition_is_folded_after_the_state() -> None:
    import asyncio

    async def run() -> tuple[FoldState, list[tuple[str, int, bytes]], int]:
        table, positions = TableStandIn(), TableStandIn()
        fold = FoldState("eu", table, pipelines(), cache=None, positions=positions)  # type: ignore[arg-type]
        sends: list[tuple[str, int, bytes]] = []  # every changelog send, in order, across both tables

        def sender(name: str, t: TableStandIn) -> Any:
            def send(p: int, k: bytes, v: bytes) -> asyncio.Future[None]:
                sends.append((name, p, k))
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                fut.set_result(None)
                return fut

            return send

        table.send_changelog = sender("objects", table)  # type: ignore[method-assign]
        positions.send_changelog = sender("positions", positions)  # type: ignore[method-assign]
        acked: list[object] = []

        class Acker:
            async def ack(self, event: object) -> bool:
                acked.append(event)
                return True

        fold.acker = Acker()
        st = object_factory(pipelines())("ctr:a", "pncounter")
        for i, (topic, offset) in enumerate([("jarvis.ops", 40), ("jarvis.ops", 41), ("us.jarvis.ops", 7)]):
            _increment(st, i + 1)
            fold.changed("ctr:a", 2, st)
            fold.order.folded((topic, 2), offset)
            fold.held.append(f"event-{i}")
        await fold.settle()
        await fold.settle()  # nothing new: no position record is sent again
        return fold, sends, len(acked)

    fold, sends, acked = asyncio.run(run())
    assert sends[0] == ("objects", 2, b"ctr:a")  # the state first, then the positions claiming it
    assert sorted(sends[1:]) == [("positions", 2, b"jarvis.ops/2"), ("positions", 2, b"us.jarvis.ops/2")]
    assert fold.position(("jarvis.ops", 2)) == 42  # the next offset whose effect is not written
    assert fold.position(("us.jarvis.ops", 2)) == 8
    assert fold.position(("jarvis.ops", 3)) is None
    assert acked == 3


def test_without_a_positions_table_nothing_is_recorded() -> None:
    fold, table = _state()
    fold.write_positions({("jarvis.ops", 0): 5})
    assert fold.position(("jarvis.ops", 0)) is None and table.changelog == []


def test_redis_writes_are_taken_in_bounded_batches_oldest_first() -> None:
    fold, _ = _state()
    create = object_factory(pipelines())
    for i in range(5):
        fold.changed(f"ctr:{i}", 0, create(f"ctr:{i}", "pncounter"))
    assert list(fold.take_dirty(2)) == ["ctr:0", "ctr:1"]
    fold.changed("ctr:0", 0, create("ctr:0", "pncounter"))  # changed again: queued behind the others
    assert list(fold.take_dirty(10)) == ["ctr:2", "ctr:3", "ctr:4", "ctr:0"]
    assert fold.take_dirty(10) == {}


def test_positions_are_sent_only_once_kafka_has_the_state_they_claim() -> None:
    async def run() -> None:
        table, positions = TableStandIn(), TableStandIn()
        fold = FoldState("eu", table, pipelines(), cache=None, positions=positions)  # type: ignore[arg-type]
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        table.send_changelog = lambda p, k, v: delivered  # type: ignore[method-assign]
        sent: list[bytes] = []

        def send_position(p: int, k: bytes, v: bytes) -> asyncio.Future[None]:
            sent.append(k)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        positions.send_changelog = send_position  # type: ignore[method-assign]

        class Acker:
            async def ack(self, event: object) -> bool:
                return True

        fold.acker = Acker()
        st = object_factory(pipelines())("ctr:a", "pncounter")
        _increment(st, 1)
        fold.changed("ctr:a", 2, st)
        fold.order.folded(("jarvis.ops", 2), 40)
        fold.held.append("event-1")
        settling = asyncio.ensure_future(fold.settle())
        await asyncio.sleep(0.05)
        assert sent == []  # the state record is not acknowledged yet
        delivered.set_result(None)
        await settling
        assert sent == [b"jarvis.ops/2"] and fold.position(("jarvis.ops", 2)) == 41

    asyncio.run(run())


def test_ebb_waits_for_the_oldest_sends_and_keeps_them_for_settle() -> None:
    import asyncio

    async def run() -> None:
        fold, _ = _state()
        loop = asyncio.get_running_loop()
        sends: list[asyncio.Future[None]] = [loop.create_future() for _ in range(10)]
        fold.inflight.extend(sends)
        await asyncio.wait_for(fold.ebb(limit=10), 1)  # at the limit: no wait
        fold.inflight.append(extra := loop.create_future())
        ebbing = asyncio.ensure_future(fold.ebb(limit=10))
        for fut in sends[:5]:
            await asyncio.sleep(0.01)
            assert not ebbing.done()  # 11 unacknowledged: waits for the oldest 6
            fut.set_result(None)
        await asyncio.sleep(0.01)
        assert not ebbing.done()
        sends[5].set_result(None)
        await asyncio.wait_for(ebbing, 1)
        assert fold.inflight == [*sends, extra]  # settle() still waits on every one of them

    asyncio.run(run())
