"""`POST /v1/ops?wait=S` through the gateway's aiohttp app, with a stand-in writer and verdict
reader (no Kafka): the status codes and result shapes docs/internals.md promises."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from connectors.ingest.http import IngestApi
from connectors.ingest.writer import BatchEncoder, Row
from jarvis.crdt import HLC
from jarvis.ops import Operation
from jarvis.partitioning import partition_for
from jarvis.security.apikeys import ADMIN, Principal, new_key
from jarvis.security.keys import ensure_node_key
from jarvis.verdicts import SentBatch, Verdict, VerdictTimeout
from pipelines.loader import pipelines

KEY, _ = new_key(bytes(36))
SIGNER = ensure_node_key("ingest-eu-0", keys_dir=Path(tempfile.mkdtemp()))
AUTH = {"Authorization": f"Bearer {KEY}"}


class Keys:
    def lookup(self, key: str) -> Principal | None:
        return Principal("ops", "k0", ADMIN) if key == KEY else None

    def role(self, name: str) -> None:
        return None


class Writer:
    """What IngestApi asks of an IngressWriter; every partition's next offset counts from 100."""

    def __init__(self) -> None:
        self.pipelines = pipelines()
        self.hlc = HLC("ingest-eu-0")
        self.bootstrap, self.settings = "127.0.0.1:1", None
        self.written: list[Operation | Row] = []
        self.offsets: dict[int, int] = {}
        self.encoder = BatchEncoder("ingest-eu-0", "eu", SIGNER, 16)

    def partition_of(self, object_id: str) -> int:
        return partition_for(object_id, 16)

    def operation(self, op_id: str, object_id: str, crdt_type: str, kind: str, args: dict[str, Any], hlc: int,
                  metadata: dict[str, str]) -> Operation:  # fmt: skip
        return Operation(op_id, object_id, crdt_type, kind, args, "ingest-eu-0", "eu", hlc, metadata, [])

    async def write_rows(self, rows: Sequence[Row], metadata: Any, batch_seed: str = "") -> list[tuple[int, int]]:
        return await self.write(rows, batch_seed)

    async def write(self, ops: Sequence[Operation | Row], batch_seed: str = "") -> list[tuple[int, int]]:
        self.written += ops
        out, at = [], {}
        for op in ops:
            p = self.partition_of(op.object_id)
            if p not in at:
                at[p] = self.offsets[p] = self.offsets.get(p, 99) + 1
            out.append((p, at[p]))
        return out


def fold(batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
    """The stand-in pipeline: a bcounter decrement over 3 is refused by eu's fold, others pass."""
    out = {}
    for b in batches:
        for i, (op, oid) in enumerate(zip(b.op_ids, b.object_ids, strict=True)):
            dot = ("eu", b.partition, b.offset, i)
            if i in b.judged:
                out[op] = Verdict(op, oid, True, ["insufficient rights in eu: holds 3, needs 5"], dot, False)
            else:
                out[op] = Verdict(op, oid, True, [], dot)
    return out


def post(body: Any, query: str = "", await_: Any = fold, slots: int | None = None) -> tuple[int, Any, Writer]:
    writer = Writer()

    async def go() -> tuple[int, Any]:
        api = IngestApi("eu", "ingest-eu-0", writer, Keys(), None, None)  # type: ignore[arg-type]
        api._await = await_  # type: ignore[method-assign]
        if slots is not None:
            api._wait_slots = asyncio.Semaphore(slots)
        client = TestClient(TestServer(api.app()))
        await client.start_server()
        try:
            resp = await client.post("/v1/ops" + query, json=body, headers=AUTH)
            return resp.status, await resp.json()
        finally:
            await client.close()
            api.close()

    status, answer = asyncio.run(go())
    return status, answer, writer


DEC = {"object_id": "bc:sku-1", "kind": "decrement", "args": {"n": 5}}
INC = {"object_id": "ctr:a", "kind": "increment", "args": {"n": 1}}


def test_a_refused_decrement_is_a_200_whose_result_carries_the_folds_reason() -> None:
    status, body, writer = post([DEC, INC], "?wait=5")
    assert status == 200 and len(writer.written) == 2
    refused, counted = body["results"]
    assert refused["status"] == "rejected"
    assert refused["reasons"] == ["insufficient rights in eu: holds 3, needs 5"]
    assert counted["status"] == "accepted" and counted["dot"][0] == "eu" and counted["op_id"] == writer.written[1].op_id


def test_without_wait_the_answer_is_the_writes() -> None:
    status, body, _ = post([DEC], "", await_=None)
    assert status == 200 and body["results"][0]["status"] == "accepted" and "dot" not in body["results"][0]


def test_a_timeout_is_a_202_with_every_operation_pending_and_why() -> None:
    def never(batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        raise VerdictTimeout("no verdict", [op for b in batches for op in b.op_ids])

    status, body, writer = post([DEC, INC], "?wait=0.5", await_=never)
    assert status == 202 and len(writer.written) == 2
    assert [r["status"] for r in body["results"]] == ["pending", "pending"]
    assert all("no verdict within 0.5 s" in r["reasons"][0] and r["op_id"] for r in body["results"])


def test_a_broken_verdict_reader_is_not_a_5xx() -> None:
    def broken(batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        raise RuntimeError("kafka gone")

    status, body, _ = post([INC], "?wait=1", await_=broken)
    assert status == 202 and body["results"][0]["status"] == "pending"
    assert "could not be read (RuntimeError)" in body["results"][0]["reasons"][0]


def test_a_bad_wait_is_a_400_and_writes_nothing() -> None:
    for q in ("?wait=0", "?wait=60", "?wait=x", "?wait="):
        status, body, writer = post([INC], q, await_=None)
        assert status == 400 and "0 < wait <= 30" in body["error"] and writer.written == [], q


def test_when_every_wait_slot_is_taken_the_answer_is_pending_at_once() -> None:
    status, body, writer = post([INC], "?wait=5", await_=None, slots=0)
    assert status == 202 and len(writer.written) == 1
    assert body["results"][0]["status"] == "pending" and "already waiting for" in body["results"][0]["reasons"][0]
