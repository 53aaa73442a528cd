"""The gateway's HTTP API (aiohttp): POST /v1/ops, GET /v1/ops/{op_id}, GET /openapi.json.

Answers (docs/internals.md#the-ingest-gateway):
  200  every operation written to ingress (acks=all): {"results": [{"index", "status": "accepted", "op_id"}]}
  400  some operation is invalid: its result has "reasons"; NOTHING of the request was written (the
       valid ones say "not_written"), so the client fixes the bad ones and sends the request again
  401  no valid key; 403 a key whose role may not write an object (nothing written either)
  409  an Idempotency-Key reused with another body; 413 over the body limit; 415 another content type
  503  with Retry-After: Kafka is not keeping up (too much in flight) or did not acknowledge
`?wait=S` (JSON bodies, 0 < S <= 30): once written, each result is the operation's verdict instead:
accepted (with its dot), rejected with reasons (the verifier's, or for a bounded-counter decrement
or transfer its origin fold's refusal), or pending; 200 when every operation has its verdict (rejected ones
included: the write succeeded and the results carry the verdicts), 202 when some are pending.
NDJSON (`Content-Type: application/x-ndjson`) is read line by line and answered line by line as
each operation is written or refused (status 200 once streaming began, like Kafka REST's
streamed records: each line has its own status). Every other error is a 4xx with a JSON reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from connectors.access_audit import AuditSink
from connectors.http_auth import Denied, HttpAuth, principal
from connectors.ingest import op_ids, waiting
from connectors.ingest.idempotency import IdempotencyStore, IdempotencyUnavailable
from connectors.ingest.openapi import ingest_openapi
from connectors.ingest.requests import (
    MAX_BODY_BYTES,
    MAX_LINE_BYTES,
    Checked,
    FastChecker,
    check_idempotency_key,
    check_op,
    parse_body,
    parse_line,
)
from connectors.ingest.status import OpStatus
from connectors.ingest.waiting import OpLike
from connectors.ingest.writer import BATCH_OPS, DeliveryFailed, IngressWriter, Overloaded, Row
from connectors.verdicts import await_verdicts
from jarvis.codec.batch_builder import Head
from jarvis.json_ops import JsonOp, OpInputError, OpParser
from jarvis.ops import Operation
from jarvis.security.apikeys import AuthStore, Principal
from jarvis.verdicts import SentBatch, Verdict

log = logging.getLogger("jarvis.ingest")

OPS = Counter("jarvis_ingest_ops_total", "Operations the gateway answered", ["region", "via", "status"])
BODY_READ_TIMEOUT_S = 30.0
RETRY_AFTER_S = "1"
JSON_TYPES = ("application/json", "")
NDJSON = "application/x-ndjson"
# Requests waiting for verdicts at once, each holding a thread and a Kafka consumer for up to
# waiting.MAX_WAIT_S: beyond that a request is answered at once with its operations pending.
WAIT_SLOTS = 16

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, reason: str, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps({"error": reason}), content_type="application/json", headers=headers
    )


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error a JSON reason; an unexpected failure a 400 naming it, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        reason = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        return _error(e.status, reason, **{k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")})
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:  # noqa: BLE001 - the client gets a reason; the log keeps the traceback
        log.exception("request %s %s failed", request.method, request.path)
        return _error(400, f"request could not be processed ({type(e).__name__})")


class IngestApi:
    def __init__(
        self,
        region: str,
        node_id: str,
        writer: IngressWriter,
        auth: AuthStore,
        idempotency: IdempotencyStore,
        status: OpStatus,
        audit: AuditSink | None = None,
    ) -> None:
        self.region = region
        self.node_id = node_id
        self.writer = writer
        self.auth = auth
        self.http_auth = HttpAuth(auth, audit)
        self.idem = idempotency
        self.status = status
        self.pipes = writer.pipelines
        self.parser = OpParser(self.pipes.rule_for)
        self.fast = FastChecker(self.pipes, self.parser, writer.encoder)
        # Its own threads: a wait of up to 30 s must not hold the loop's default executor, which
        # GET /v1/ops and the other blocking calls share.
        self._waiters = ThreadPoolExecutor(WAIT_SLOTS, thread_name_prefix="ingest-wait")
        self._wait_slots = asyncio.Semaphore(WAIT_SLOTS)

    def close(self) -> None:
        self._waiters.shutdown(wait=False, cancel_futures=True)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_errors_as_json, self.http_auth.middleware()])
        app.router.add_post("/v1/ops", self.post_ops)
        app.router.add_get("/v1/ops/{op_id}", self.get_op)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        return app

    # -- plumbing ---------------------------------------------------------------------------------
    def _principal(self, request: web.Request) -> Principal:
        return principal(request)  # authenticated by the middleware (connectors/http_auth.py)

    def _audit_refusal(self, request: web.Request, p: Principal, status: int, body: dict[str, Any]) -> None:
        if status != 403 or self.http_auth.audit is None:
            return
        reasons = [r for res in body.get("results", []) for r in res.get("reasons", []) if res.get("status") == "rejected"]
        self.http_auth.audit.denied(request.method, request.path, 403, "; ".join(reasons)[:500] or "forbidden",
                                    p.name, p.key_id)  # fmt: skip

    def _builder(
        self, principal: Principal, nonce: str, ms: int, hlc_of: Callable[[int], int]
    ) -> Callable[[int, JsonOp], Operation]:
        meta = {"principal": principal.name, "via": self.node_id}

        def build(i: int, jop: JsonOp) -> Operation:
            op_id = op_ids.make(self.writer.partition_of(jop.object_id), ms, nonce, i)
            return self.writer.operation(op_id, jop.object_id, jop.crdt_type, jop.kind, jop.args, hlc_of(i), dict(meta))

        return build

    def _hlcs(self, n: int) -> list[int]:
        return list(self.writer.hlc.reserve(n))

    def _metadata(self, principal: Principal) -> dict[str, str]:
        return {"principal": principal.name, "via": self.node_id}

    def _operations(
        self, items: list[Any], principal: Principal, plan: dict[str, Any]
    ) -> tuple[Sequence[Row] | Sequence[Operation], tuple[int, dict[str, Any]] | None]:
        """The request's operations under `plan` (its nonce, time and HLCs), or the refusal to
        answer: Rows when every item takes the fast path, Operations otherwise."""
        nonce, ms, hlcs = plan["nonce"], plan["ms"], plan["hlcs"]

        prefixes = [op_ids.prefix(p, ms, nonce) for p in range(self.writer.encoder.partitions)]

        def row_of(i: int, oid: str, crdt_type: str, kind: str, args: dict[str, Any], partition: int,
                   head: Head, args_json: bytes) -> Row:  # fmt: skip
            return Row(f"{prefixes[partition]}{i:x}", oid, crdt_type, kind, args, hlcs[i], partition, head, args_json)

        rows = self.fast.rows(items, principal, row_of)
        if rows is not None:
            return rows, None
        build = self._builder(principal, nonce, ms, hlcs.__getitem__)
        checked: list[Checked] = []
        ops: list[Operation] = []
        verdicts: dict[tuple[str, str, bytes], list[str]] = {}
        for i, item in enumerate(items):
            c, op = check_op(item, principal, self.pipes, lambda j, i=i: build(i, j), parser=self.parser, verdicts=verdicts)
            checked.append(c)
            if op is not None:
                ops.append(op)
        if len(ops) == len(items):
            return ops, None
        status = 400 if any(c.reasons and not c.forbidden for c in checked) else 403
        results = [
            {"index": i, "status": "rejected", "reasons": c.reasons} if c.reasons
            else {"index": i, "status": "not_written",
                  "reasons": ["another operation of this request was refused: nothing was written"]}
            for i, c in enumerate(checked)
        ]  # fmt: skip
        OPS.labels(self.region, "http", "rejected").inc(sum(1 for c in checked if c.reasons))
        return [], (status, {"results": results})

    # -- POST /v1/ops -----------------------------------------------------------------------------
    async def post_ops(self, request: web.Request) -> web.StreamResponse:
        principal = self._principal(request)
        ctype = request.content_type if request.headers.get("Content-Type") else ""
        try:
            wait = waiting.parse_wait(request.query.get("wait"))
        except ValueError as e:
            return _error(400, str(e))
        if ctype == NDJSON:
            if wait is not None:
                return _error(400, "wait applies to JSON bodies; NDJSON lines are answered as they are written")
            if "Idempotency-Key" in request.headers:
                return _error(400, "Idempotency-Key applies to JSON bodies; NDJSON lines are answered one by one")
            return await self._stream(request, principal)
        if ctype not in JSON_TYPES:
            return _error(415, f"Content-Type {ctype!r}: send application/json or {NDJSON}")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _error(413, f"body of {request.content_length} bytes exceeds the limit of {MAX_BODY_BYTES}")
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                raw = await request.read()
        except TimeoutError:
            return _error(408, f"the body did not arrive within {BODY_READ_TIMEOUT_S:.0f} s")
        idem_key = request.headers.get("Idempotency-Key")
        if idem_key is None:
            status, body = await self._post_json(raw, principal, None, wait)
            self._audit_refusal(request, principal, status, body)
            return self._answer(status, body)
        bad = check_idempotency_key(idem_key)
        if bad:
            return _error(400, bad)
        key = f"{principal.key_id}:{idem_key}".encode()
        h = hashlib.sha256(raw).hexdigest()
        try:
            rec = await self.idem.get(key)
        except IdempotencyUnavailable as e:
            return _error(503, str(e), **{"Retry-After": RETRY_AFTER_S})
        if rec is not None and rec.get("h") != h:
            return _error(409, "this Idempotency-Key was used with another request body in the last 24 h")
        if rec is not None and rec.get("state") == "done":
            resp = self._answer(rec["status"], rec["body"])
            resp.headers["Idempotent-Replayed"] = "true"
            return resp
        status, body = await self._post_json(raw, principal, (key, h, rec), wait)
        self._audit_refusal(request, principal, status, body)
        return self._answer(status, body)

    def _answer(self, status: int, body: dict[str, Any]) -> web.Response:
        headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else {}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)

    async def _post_json(
        self,
        raw: bytes,
        principal: Principal,
        idem: tuple[bytes, str, dict[str, Any] | None] | None,
        wait: float | None = None,
    ) -> tuple[int, dict[str, Any]]:
        try:
            items = parse_body(raw)
        except OpInputError as e:
            return (413 if "at most" in e.reasons[0] else 400), {"error": "; ".join(e.reasons)}
        plan = idem[2] if idem else None
        if plan is None:
            plan = {"state": "pending", "nonce": secrets.token_hex(8), "ms": int(time.time() * 1000),
                    "hlcs": self._hlcs(len(items))}  # fmt: skip
            if idem:
                plan["h"] = idem[1]
        if len(plan["hlcs"]) != len(items):
            return 409, {"error": "this Idempotency-Key's pending request has another number of operations"}
        ops, refusal = self._operations(items, principal, plan)
        if refusal is not None:
            status, body = refusal
            if idem:
                await self._remember(idem[0], idem[1], status, body)
            return status, body
        if idem and idem[2] is None:
            try:
                plan = await self.idem.put(idem[0], plan)
            except IdempotencyUnavailable as e:
                return 503, {"error": str(e)}
            if plan.get("state") == "done":  # another instance answered meanwhile
                return plan["status"], plan["body"]
            if plan.get("h") != idem[1]:
                return 409, {"error": "this Idempotency-Key was used with another request body in the last 24 h"}
            ops, _ = self._operations(items, principal, plan)  # the winning plan's ids and HLCs
        sent_ms = int(time.time() * 1000)  # before the produce: at or before the records' timestamps
        try:
            if ops and isinstance(ops[0], Row):
                positions = await self.writer.write_rows(ops, self._metadata(principal), batch_seed=plan["nonce"])  # type: ignore[arg-type]
            else:
                positions = await self.writer.write(ops, batch_seed=plan["nonce"])  # type: ignore[arg-type]
        except Overloaded as e:
            return 503, {"error": f"Kafka is not keeping up ({e}); retry after {RETRY_AFTER_S} s"}
        except DeliveryFailed as e:
            return 503, {"error": f"{e}; retry (with the same Idempotency-Key to be safe)"}
        OPS.labels(self.region, "http", "accepted").inc(len(ops))
        body = {"results": [{"index": i, "status": "accepted", "op_id": op.op_id} for i, op in enumerate(ops)]}
        if idem:
            # The write's answer is what a retry gets: the wait below only reads what became of it.
            await self._remember(idem[0], idem[1], 200, body)
        if wait is None:
            return 200, body
        if idem and idem[2] is not None:
            # A pending plan rewritten after an interruption: its operations' verdicts belong to their
            # first write (this one is the verifier's duplicate), which this request cannot place.
            why = "resumed after an interruption: its verdict is at its first write; ask GET /v1/ops/{op_id}"
            return 202, {"results": [waiting.result(i, op.op_id, None, why) for i, op in enumerate(ops)]}
        return await self._wait_verdicts(ops, positions, sent_ms, wait)

    async def _wait_verdicts(
        self, ops: Sequence[OpLike], positions: list[tuple[int, int]], sent_ms: int, wait: float
    ) -> tuple[int, dict[str, Any]]:
        placed = waiting.place(ops, positions, sent_ms)
        if self._wait_slots.locked():
            why = f"the gateway is already waiting for {WAIT_SLOTS} requests' verdicts; ask GET /v1/ops/{{op_id}}"
            return 202, {"results": [waiting.result(i, op.op_id, None, why) for i, op in enumerate(ops)]}
        async with self._wait_slots:
            try:
                verdicts, pending = await waiting.gather(placed, wait, self._await, self._waiters)
            except Exception as e:  # noqa: BLE001 - written is written: the caller learns that, not a 400
                log.exception("waiting for verdicts failed")
                why = f"the verdicts could not be read ({type(e).__name__}); ask GET /v1/ops/{{op_id}}"
                verdicts, pending = {}, {op.op_id: why for op in ops}
        return (202 if pending else 200), {"results": waiting.results(placed, ops, verdicts, pending)}

    def _await(self, batches: list[SentBatch], timeout: float) -> dict[str, Verdict]:
        return await_verdicts(
            self.writer.bootstrap, self.region, batches, timeout, principal="ingest", settings=self.writer.settings
        )

    async def _remember(self, key: bytes, h: str, status: int, body: dict[str, Any]) -> None:
        try:
            await self.idem.put(key, {"state": "done", "h": h, "status": status, "body": body})
        except IdempotencyUnavailable:
            log.warning("answer for an Idempotency-Key not recorded; a retry rewrites the same batches")

    # -- NDJSON -----------------------------------------------------------------------------------
    async def _stream(self, request: web.Request, principal: Principal) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": NDJSON})
        await resp.prepare(request)
        build = self._builder(principal, secrets.token_hex(8), int(time.time() * 1000), lambda i: self.writer.hlc.now())
        index = 0
        buf = bytearray()
        skipping = False  # inside a line that was too long: drop up to its newline
        reader = request.content
        while True:
            try:
                async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                    chunk = await reader.readany()
            except TimeoutError:
                await resp.write(orjson.dumps({"error": f"no data for {BODY_READ_TIMEOUT_S:.0f} s"}) + b"\n")
                break
            eof = not chunk
            buf += chunk
            lines: list[bytes] = []
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                if skipping:
                    skipping = False
                    continue
                lines.append(line)
            if eof and buf and not skipping:
                lines.append(bytes(buf))
                buf.clear()
            too_long = len(buf) > MAX_LINE_BYTES and not skipping
            out: list[dict[str, Any]] = []
            pending: list[tuple[int, Operation]] = []
            verdicts: dict[tuple[str, str, bytes], list[str]] = {}  # per chunk read: bounded
            for line in lines:
                if not line.strip():
                    continue
                i = index
                index += 1
                try:
                    item = parse_line(line)
                except OpInputError as e:
                    out.append({"index": i, "status": "rejected", "reasons": e.reasons})
                    continue
                c, op = check_op(item, principal, self.pipes, lambda j, i=i: build(i, j), parser=self.parser, verdicts=verdicts)
                if op is None:
                    out.append({"index": i, "status": "rejected", "reasons": c.reasons})
                else:
                    pending.append((i, op))
                if len(pending) >= BATCH_OPS:
                    out += await self._write_lines(pending)
                    pending = []
            if pending:
                out += await self._write_lines(pending)
            if too_long:
                out.append({"index": index, "status": "rejected", "reasons": [f"line exceeds {MAX_LINE_BYTES} bytes"]})
                index += 1
                buf.clear()
                skipping = True
            if out:
                out.sort(key=lambda r: r["index"])
                await resp.write(b"".join(orjson.dumps(r) + b"\n" for r in out))
            if eof:
                break
        await resp.write_eof()
        return resp

    async def _write_lines(self, pending: list[tuple[int, Operation]]) -> list[dict[str, Any]]:
        try:
            await self.writer.write([op for _, op in pending])
        except (Overloaded, DeliveryFailed) as e:
            OPS.labels(self.region, "http", "unavailable").inc(len(pending))
            return [{"index": i, "status": "unavailable", "reasons": [str(e)], "retry_after": 1} for i, _ in pending]
        OPS.labels(self.region, "http", "accepted").inc(len(pending))
        return [{"index": i, "status": "accepted", "op_id": op.op_id} for i, op in pending]

    # -- GET --------------------------------------------------------------------------------------
    async def get_op(self, request: web.Request) -> web.Response:
        p = self._principal(request)
        op_id = request.match_info["op_id"]
        where = op_ids.parse(op_id)
        if where is None:
            return _error(404, f"{op_id[:80]!r} is not an operation id this gateway gave out")
        found = await asyncio.to_thread(self.status.find, op_id, *where)
        if found is None:
            return _error(404, f"operation {op_id} is not on {self.region}'s ingress (yet)")
        if not (p.role.may_read(found["object_id"]) or p.role.may_write(found["object_id"])):
            raise Denied(403, f"{p.name} (role {p.role.name}) may not see {found['object_id'][:80]}", p)
        return web.Response(body=orjson.dumps(found), content_type="application/json")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(ingest_openapi()), content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"ok": True, "region": self.region, "node": self.node_id}),
                            content_type="application/json")  # fmt: skip

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
