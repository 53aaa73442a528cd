"""The archiver's loop (streams/archiver.py) with a fake consumer and sink: a chunk's offsets are
committed only after its write returned, in order, undecodable records are skipped but committed
(a record of an unknown schema stops the worker instead),
and a failed write is retried on a new connection before anything is committed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import TopicPartition

import streams.archiver as archiver_module
from connectors.archive.rows import MessageRows
from jarvis.codec import encode_batch, encode_verified
from jarvis.ops import Operation, OperationBatch
from streams.archiver import Archiver

HLC = 1_764_100_000_000 << 16


def value(batch_id: str, n: int) -> bytes:
    ops = [
        Operation(f"{batch_id}-{i}", "ctr:x", "pncounter", "increment", {"n": 1}, "node", "eu", HLC + i)
        for i in range(n)
    ]
    batch = OperationBatch(batch_id, "node", "key", "eu", HLC, ops, b"\x01" * 32 * n, b"\x02" * 64)
    return encode_verified("eu", 0, 0, list(range(n)), [1.0] * n, encode_batch(batch))


class Msg:
    def __init__(self, partition: int, offset: int, value: bytes) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "jarvis.ops"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, *event: Any) -> None:
        with self.lock:
            self.events.append(event)


class FakeSink:
    def __init__(self, log: Log, fail: int = 0, gate: threading.Event | None = None) -> None:
        self.log, self.fail, self.gate = log, fail, gate
        self.conn = None

    def write(self, messages: list[MessageRows]) -> int:
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            self.fail -= 1
            raise OSError("connection lost")
        self.log.add("write", [m.batch_id for m in messages])
        return sum(m.count for m in messages)

    def close(self) -> None:
        self.log.add("close")


class FakeConsumer:
    def __init__(self, log: Log) -> None:
        self.log = log

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous is False
        self.log.add("commit", sorted((tp.partition, tp.offset) for tp in offsets))


def test_chunks_are_written_in_order_and_each_committed_after_its_write() -> None:
    log = Log()
    a = Archiver(lambda: FakeSink(log), "eu", FakeConsumer(log), chunk_rows=6)  # type: ignore[arg-type]
    a.archive([Msg(p, o, value(f"b{p}{o}", 3)) for p, o in ((0, 10), (1, 20), (0, 11), (1, 21), (0, 12))])
    a.close()
    assert a.archived == 15
    assert log.events == [
        ("write", ["b010", "b120"]),
        ("commit", [(0, 11), (1, 21)]),
        ("write", ["b011", "b121"]),
        ("commit", [(0, 12), (1, 22)]),
        ("write", ["b012"]),
        ("commit", [(0, 13)]),
        ("close",),
    ]


def test_no_commit_while_the_write_is_in_flight_and_decoding_goes_on() -> None:
    log, gate = Log(), threading.Event()
    a = Archiver(lambda: FakeSink(log, gate=gate), "eu", FakeConsumer(log), chunk_rows=2)  # type: ignore[arg-type]
    decoded: list[str] = []
    real = archiver_module.message_rows

    def spy(v: bytes) -> MessageRows:
        m = real(v)
        decoded.append(m.batch_id)
        return m

    archiver_module.message_rows = spy
    try:
        a.archive([Msg(0, 1, value("first", 2))])  # handed to the writer, which waits at the gate
        t = threading.Thread(target=a.archive, args=([Msg(0, 2, value("second", 2))],))
        t.start()
        t.join(0.5)
        assert decoded == ["first", "second"] and log.events == []  # decoded, nothing durable or committed
        gate.set()
        t.join(10)
        a.close()
    finally:
        archiver_module.message_rows = real
    assert log.events == [
        ("write", ["first"]),
        ("commit", [(0, 2)]),
        ("write", ["second"]),
        ("commit", [(0, 3)]),
        ("close",),
    ]


def test_undecodable_records_are_skipped_and_their_offsets_committed() -> None:
    log = Log()
    a = Archiver(lambda: FakeSink(log), "eu", FakeConsumer(log))  # type: ignore[arg-type]
    a.archive([Msg(0, 5, b"\xc3\x01garbage"), Msg(0, 6, value("ok", 1)), Msg(1, 9, b"")])
    a.close()
    assert log.events == [("write", ["ok"]), ("commit", [(0, 7), (1, 10)]), ("close",)]


def test_a_record_of_an_unknown_newer_schema_stops_the_worker_before_committing_it() -> None:
    log = Log()
    a = Archiver(lambda: FakeSink(log), "eu", FakeConsumer(log))  # type: ignore[arg-type]
    newer = b"\xc3\x01" + b"\xee" * 8 + b"body of a record written by a newer verifier"
    with pytest.raises(SystemExit, match="upgrade the archiver"):
        a.archive([Msg(0, 6, value("ok", 1)), Msg(0, 7, newer)])
    assert not [e for e in log.events if e[0] == "commit"]


def test_a_failed_write_is_retried_on_a_new_connection_before_any_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(archiver_module.time, "sleep", lambda s: None)
    log = Log()
    sinks = iter([FakeSink(log, fail=1), FakeSink(log, fail=1), FakeSink(log)])
    a = Archiver(lambda: next(sinks), "eu", FakeConsumer(log))  # type: ignore[arg-type]
    a.archive([Msg(0, 1, value("b", 2))])
    a.close()
    assert log.events == [("close",), ("close",), ("write", ["b"]), ("commit", [(0, 2)]), ("close",)]
    assert a.archived == 2


def test_a_database_that_stays_down_stops_the_worker_with_nothing_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(archiver_module.time, "sleep", lambda s: None)
    log = Log()
    a = Archiver(lambda: FakeSink(log, fail=99), "eu", FakeConsumer(log))  # type: ignore[arg-type]
    a.archive([Msg(0, 1, value("b", 2))])
    with pytest.raises(SystemExit, match="nothing lost"):
        a.flush()
    assert not [e for e in log.events if e[0] in ("write", "commit")]
