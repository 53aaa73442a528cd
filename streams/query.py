"""Stream query endpoints, served by every fold worker on its Faust web server.

Reads of one object are routed by Faust's table router to the worker that owns the object's
partition, so a query to any worker of a region answers for every object. Listing and watching go
through Redis, which every fold worker of the region feeds.

  GET /v1/objects/{id}                       object view: object_id, type, value, region, ...
  GET /v1/objects?prefix=&after=&limit=      page of object views, with a `next` cursor
  GET /v1/objects/{id}/range?from=&to=&window=&agg=   time-series range or windowed aggregate
  GET /v1/objects/{id}/path?from=&to=        graph shortest path
  GET /v1/objects/{id}/watch                 server-sent events: the view now, then every change
  GET /v1/objects/{id}/history?at=&limit=   replay from the archive: operations, signatures, value
  GET /v1/digest                             digest of the locally owned state, per partition
  GET /readyz                                200 once every partition assigned here is recovered
                                             (and reads can be routed), else 503 with what is not
  GET /openapi.json                          this API's OpenAPI document (streams/query_openapi.py)

Every request but /healthz, /readyz, /metrics and /openapi.json needs `Authorization: Bearer <key>`
(connectors/http_auth.py): a read of one object needs the role's read grant for it (403 before
anything is looked up, so it does not tell whether the object exists), a listing holds only the
objects the role may read, the digest needs a role that reads everything, and Faust's own pages
(outside /v1/) an admin. Clinical objects (pipelines/default.yaml `clinical: true`) are read only
with a clinical role that grants them (jarvis/security/apikeys.py): others get 403 saying so, a
listing inside a clinical prefix included; every read served of one is in the access audit,
recorded by the worker that answered it (the owner, after Faust's router forwarded the request).

A read of an object whose partition is not assigned-and-recovered here answers 503
{"error": "recovering", "retry_after": s} with a Retry-After header, never 404: until its partition
is recovered the table cannot tell an unknown object from one not read back yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import faust
import orjson
from aiohttp import web as aioweb

from connectors.access_audit import AuditSink
from connectors.auth_view import AuthView
from connectors.http_auth import EXEMPT, PRINCIPAL, Denied, HttpAuth
from connectors.oidc import OidcVerifier
from connectors.redis_cache import CacheUnavailable
from connectors.redis_watch import CLOSED, TooManyWatchers, WatchHub
from connectors.replayer import Replayer
from jarvis.config import Settings, settings
from jarvis.ops import object_id_too_long
from jarvis.partitioning import partition_for
from jarvis.replay import hlc_at
from jarvis.security.apikeys import clinical_prefixes, pages_after, scan_prefixes
from jarvis.security.key_store import FileAuthStore
from streams.faust_compat import fetch_topic_metadata, producer_started, topic_metadata_known
from streams.fold_state import FoldState
from streams.query_openapi import query_openapi
from streams.readiness import RETRY_AFTER_S
from streams.state_digests import EVERY_S as DIGEST_EVERY_S
from streams.state_digests import DigestKeeper

MAX_PAGE = 1000
KEEPALIVE_S = 15.0  # a comment line on an idle watch stream this often: finds clients that left
ViewFun = Callable[..., Awaitable[Any]]


def _error(web: faust.web.Web, status: int, message: str) -> faust.web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return web.json({"error": message}, status=status, headers=headers)


def _recovering(web: faust.web.Web, region: str, partition: int) -> faust.web.Response:
    body = {"error": "recovering", "retry_after": RETRY_AFTER_S, "region": region, "partition": partition}
    return web.json(body, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def not_ready_reason(
    routable: int, producer_started: bool, metadata_known: bool, rebalancing: bool
) -> str | None:
    """Why the table router cannot route a read yet (None: it can, once any missing metadata of the
    changelog topic is fetched). It needs to know which worker owns which partition of the table
    (`routable`: how many it knows) and a running producer, whose metadata of the changelog topic
    gives an object's partition; metadata missing during a rebalance is not worth fetching, the
    assignment being about to change."""
    if not routable:
        return "partitions not assigned yet"
    if not producer_started:
        return "its producer is not started yet"
    if not metadata_known and rebalancing:
        return "partitions being reassigned"
    return None


class ViewRouter:
    """Sends a read of one object to the worker that owns the object's partition (Faust's table
    router), or answers 503 (JSON, retryable) while routing is not possible yet.

    The router finds an object's partition through the producer's cached metadata, which can lack
    the table's changelog topic while the partitions are already assigned: in the second region of
    a fresh stack every routed read failed that way for ~4 minutes, until aiokafka's 5-minute
    metadata refresh. So that metadata is fetched first when it is missing."""

    def __init__(self, app: faust.App, table: Any) -> None:
        self.app = app
        self.table = table
        self.changelog = table.changelog_topic.get_topic_name()

    async def not_ready(self) -> str | None:
        """Why a read cannot be routed now; None once it can, the changelog topic's metadata having
        been fetched if the producer lacked it."""
        app = self.app
        started = producer_started(app)
        known = started and topic_metadata_known(app, self.changelog)
        reason = not_ready_reason(self.routable(), started, known, app.rebalancing)
        if reason is None and not known:
            await fetch_topic_metadata(app, self.changelog)
        return reason

    def routable(self) -> int:
        """Partitions of the table whose owner the router knows (from the group's assignment)."""
        owners = self.app.router.table_metadata(self.table.name)
        return sum(len(parts) for assignment in owners.values() for parts in assignment.values())

    def routed(self, view: ViewFun) -> ViewFun:
        """`view`, run on the worker owning the object named by the path's `object_id`."""
        route = self.app.table_route(table=self.table, match_info="object_id")(view)

        async def guarded(web: faust.web.Web, request: Any, **kwargs: Any) -> faust.web.Response:
            too_long = object_id_too_long(request.match_info.get("object_id", ""))
            if too_long:
                return _error(web, 414, too_long)
            reason = await self.not_ready()
            if reason is not None:
                return _error(web, 503, f"the fold is starting ({reason}); retry")
            try:
                resp = await route(web, request, **kwargs)
            except (aiohttp.ClientError, TimeoutError) as e:
                # The owner is restarting or its partitions are moving: a retry will find it.
                return _error(web, 503, f"the worker owning this object did not answer ({type(e).__name__}); retry")
            if resp.status == 503 and "Retry-After" not in resp.headers:
                # Faust's router forwards only the status and body of the owner's answer.
                resp.headers["Retry-After"] = str(RETRY_AFTER_S)
            return resp

        guarded.__name__ = view.__name__
        return guarded


def _handler(method: ViewFun) -> ViewFun:
    """Faust makes a View class of a plain function, the view instance being its first argument;
    a bound method put there would not receive it."""

    async def handler(web: faust.web.Web, request: Any, **kwargs: Any) -> faust.web.Response:
        return await method(web, request, **kwargs)

    handler.__name__ = method.__name__
    return handler


class QueryViews:
    """The query endpoints of one fold worker, reading the worker's FoldState and the region's Redis."""

    def __init__(
        self, state: FoldState, partitions: int, hub: WatchHub | None = None, auth: HttpAuth | None = None
    ) -> None:
        self.state = state
        self.region = state.region
        self.partitions = partitions
        self.hub = hub
        self.auth = auth  # None only in unit tests that call the views directly
        self.app: faust.App | None = None
        self.digests = DigestKeeper(state, partitions)

    def install(self, app: faust.App) -> None:
        self.app = app
        router = ViewRouter(app, self.state.table)
        if self.auth is not None:
            # Faust's web server is aiohttp: its middlewares run before every page, Faust's own too.
            app.web.web_app.middlewares.extend([self.auth.middleware(), self._admin_outside_v1])
        for path, view, routed in (
            ("/v1/objects/{object_id}", self.get_object, True),
            ("/v1/objects", self.list_objects, False),
            ("/v1/objects/{object_id}/range", self.ts_range, True),
            ("/v1/objects/{object_id}/path", self.graph_path, True),
            ("/v1/objects/{object_id}/watch", self.watch, False),
            ("/v1/objects/{object_id}/history", self.history, False),
            ("/v1/digest", self.digest, False),
        ):
            handler = _handler(view)
            if "{object_id}" in path and view is not self.watch:
                handler = self._audited(handler)  # inside the router: the answering worker audits
            handler = router.routed(handler) if routed else handler
            app.page(path)(self._permitted(handler, object_scoped="{object_id}" in path,
                                           digest=path == "/v1/digest"))  # fmt: skip

        async def openapi(web: faust.web.Web, request: Any) -> faust.web.Response:
            return web.json(query_openapi())

        app.page("/openapi.json")(openapi)

        async def readyz(web: faust.web.Web, request: Any) -> faust.web.Response:
            readiness = self.state.readiness
            reason = await router.not_ready()
            auth_loaded = self.auth is None or getattr(self.auth.store, "loaded", True)
            ready = readiness.all_ready and reason is None and auth_loaded
            body = {"ready": ready, "region": self.region, "routing": reason or "ok",
                    "auth": "loaded" if auth_loaded else "roles and keys not loaded yet", **readiness.report()}  # fmt: skip
            return web.json(body, status=200 if ready else 503)

        app.page("/readyz")(readyz)
        app.timer(DIGEST_EVERY_S)(self.digests.tick)

    def _permitted(self, view: ViewFun, *, object_scoped: bool, digest: bool) -> ViewFun:
        """`view`, run only if the principal's role allows it (checked before any lookup or routing,
        so a 403 says nothing about whether the object exists)."""
        auth = self.auth

        async def permitted(web: faust.web.Web, request: Any, **kwargs: Any) -> faust.web.Response:
            if auth is not None:
                if object_scoped:
                    auth.require_read(request, request.match_info.get("object_id", ""))
                if digest:
                    p = request[PRINCIPAL]
                    auth.require(request, p.role.reads_everything, "read the digest (it needs read on '*')")
            return await view(web, request, **kwargs)

        permitted.__name__ = view.__name__
        return permitted

    def _audited(self, view: ViewFun) -> ViewFun:
        """`view`, its served (200) read of a clinical object written to the access audit."""
        auth = self.auth

        async def audited(web: faust.web.Web, request: Any, **kwargs: Any) -> faust.web.Response:
            resp = await view(web, request, **kwargs)
            if auth is not None and resp.status == 200:
                auth.record_read(request, [request.match_info.get("object_id", "")])
            return resp

        audited.__name__ = view.__name__
        return audited

    @aioweb.middleware
    async def _admin_outside_v1(self, request: aioweb.Request, handler: Any) -> aioweb.StreamResponse:
        """Faust's own pages (/router/, /table/..., /stats/) show state and topology: admins only."""
        path = request.path
        p = request.get(PRINCIPAL)
        if p is not None and not path.startswith("/v1/") and path not in EXEMPT and not p.role.admin:
            d = Denied(403, f"{p.name} (role {p.role.name}) may not read {path[:80]} (admins only)", p)
            assert self.auth is not None
            self.auth.record(request, d)
            return d.response()
        return await handler(request)

    def lookup(self, web: faust.web.Web, object_id: str) -> tuple[Any, faust.web.Response | None]:
        partition = partition_for(object_id, self.partitions)
        if not self.state.readiness.can_answer(partition):
            return None, _recovering(web, self.region, partition)
        st = self.state.peek(object_id)
        if st is None:
            return None, _error(web, 404, f"unknown object {object_id!r} in region {self.region}")
        return st, None

    async def get_object(self, web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        st, err = self.lookup(web, object_id)
        return err or web.bytes(self.state.view_bytes(st), content_type="application/json")

    async def list_objects(self, web: faust.web.Web, request: Any) -> faust.web.Response:
        state, region = self.state, self.region
        prefix = request.query.get("prefix", "")
        after = request.query.get("after") or None
        try:
            limit = min(MAX_PAGE, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return _error(web, 400, "limit must be an integer")
        p = request.get(PRINCIPAL)
        head, sep, _ = prefix.partition(":")
        if p is not None and sep and head in clinical_prefixes() and not p.role.clinical:
            # Inside a clinical prefix nothing is listable without the role: say so, as a read does.
            assert self.auth is not None
            d = Denied(403, f"{p.name} (role {p.role.name}) may not list {prefix[:80]}: {head}: objects are "
                            "clinical: a clinical role that grants them is needed", p)  # fmt: skip
            self.auth.record(request, d)
            return d.response()
        try:
            # Listing reads Redis only: while any partition's objects are not all there (Redis
            # restarted, the fold rebuilding it), a page could silently miss existing objects.
            unbuilt = await state.cache.unbuilt(range(self.partitions))
            if unbuilt:
                return _error(web, 503, f"the cache is being rebuilt (partitions {sorted(unbuilt)}); retry")
            if p is None and self.auth is not None:
                return _error(web, 401, "a valid API key is needed")  # unreachable behind the middleware
            # A reader of inventory:* scans inventory: only, not pages of ids it may not see.
            scans = None if p is None or p.role.admin else scan_prefixes(p.role.read, prefix)
            ids: list[str] = []
            for scan, cursor in pages_after([prefix] if scans is None else scans, after):
                ids += await state.cache.list_ids(scan, cursor, limit - len(ids))
                if len(ids) == limit:
                    break
            raw = await state.cache.views(ids)
        except CacheUnavailable as e:
            return _error(web, 503, f"listing needs Redis: {e}; retry")
        views = [orjson.loads(r) for r in raw if r is not None]
        if p is not None:
            views = [v for v in views if p.role.may_read(v.get("object_id", ""))]
            if self.auth is not None:
                self.auth.record_read(request, [v.get("object_id", "") for v in views])
        nxt = ids[-1] if len(ids) == limit else None
        return web.json({"region": region, "prefix": prefix, "objects": views, "next": nxt})

    async def ts_range(self, web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        st, err = self.lookup(web, object_id)
        if err:
            return err
        if st.crdt_type != "timeseries":
            return _error(web, 400, f"{object_id} is a {st.crdt_type}, not a timeseries")
        q = request.query
        try:
            frm = float(q["from"]) if "from" in q else float("-inf")
            to = float(q["to"]) if "to" in q else float("inf")
            if "window" in q or "agg" in q:
                window = float(q.get("window", "60"))
                agg = q.get("agg", "mean")
                result = st.value.aggregate(frm, to, window, agg)
                return web.json({"object_id": object_id, "window": window, "agg": agg, "buckets": result})
            return web.json({"object_id": object_id, "points": st.value.range(frm, to)})
        except (ValueError, KeyError) as e:
            return _error(web, 400, str(e))

    async def graph_path(self, web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        st, err = self.lookup(web, object_id)
        if err:
            return err
        if st.crdt_type != "graph":
            return _error(web, 400, f"{object_id} is a {st.crdt_type}, not a graph")
        a, b = request.query.get("from"), request.query.get("to")
        if not a or not b:
            return _error(web, 400, "path needs ?from=<vertex>&to=<vertex>")
        return web.json({"object_id": object_id, "from": a, "to": b, "path": st.value.shortest_path(a, b)})

    async def watch(self, web: faust.web.Web, request: Any, object_id: str) -> Any:
        """The object's view now (from Redis, else from the fold), then every change. Every refusal
        (too many streams, Redis down, the object's partition recovering) is a 503 before the 200."""
        too_long = object_id_too_long(object_id)
        if too_long:
            return _error(web, 414, too_long)
        if self.hub is None:
            return _error(web, 503, "watch streams are not served by this worker")
        try:
            sub = await self.hub.subscribe(object_id)
        except (TooManyWatchers, CacheUnavailable) as e:
            return _error(web, 503, f"watch unavailable: {e}; retry")
        try:
            try:
                current = await self.state.cache.get(object_id)
            except CacheUnavailable as e:
                return _error(web, 503, f"watch unavailable: {e}; retry")
            if current is None:
                current, err = await self.fold_view(web, object_id, request.headers.get("Authorization"))
                if err is not None:
                    return err
            resp = aioweb.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await resp.prepare(request)
            if self.auth is not None:
                self.auth.record_read(request, [object_id])  # the stream is open: it reads the object
            if current is not None:
                await resp.write(b"event: state\ndata: " + current + b"\n\n")
            while True:
                try:
                    data = await asyncio.wait_for(sub.changes.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")  # lets us notice a client that left
                    continue
                if data is CLOSED:
                    break  # Redis went away or the client fell behind: it reconnects for the state
                await resp.write(b"event: change\ndata: " + data + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await self.hub.unsubscribe(sub)
        return resp

    async def fold_view(
        self, web: faust.web.Web, object_id: str, authorization: str | None = None
    ) -> tuple[bytes | None, Any]:
        """The object's view from the fold (Redis lacked it): this worker's table if it owns the
        object's partition, else the owner's query API. (None, None): no such object."""
        partition = partition_for(object_id, self.partitions)
        state = self.state
        if state.readiness.can_answer(partition):
            st = state.peek(object_id)
            return (None if st is None else state.view_bytes(st)), None
        app = self.app
        assert app is not None  # install() ran
        try:
            owner = app.router.key_store(state.table.name, object_id.encode())
        except KeyError:
            return None, _recovering(web, self.region, partition)
        if str(owner).rstrip("/") == str(app.conf.canonical_url).rstrip("/"):
            return None, _recovering(web, self.region, partition)  # ours, still being recovered
        url = f"{str(owner).rstrip('/')}/v1/objects/{urllib.parse.quote(object_id, safe='')}"
        try:
            headers = {"Authorization": authorization} if authorization else None
            async with app.http_client.get(url, timeout=aiohttp.ClientTimeout(total=5), headers=headers) as r:
                if r.status == 200:
                    return await r.read(), None
                if r.status == 404:
                    return None, None
        except (aiohttp.ClientError, TimeoutError):
            pass
        return None, _recovering(web, self.region, partition)

    async def history(self, web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        q = request.query
        try:
            limit = min(10_000, max(0, int(q.get("limit", "100"))))
            at = hlc_at(dt.datetime.fromisoformat(q["at"])) if "at" in q else None
        except ValueError as e:
            return _error(web, 400, f"bad query: {e} (at is ISO-8601, limit an integer)")
        try:
            report = await asyncio.to_thread(_archive_replay, object_id, at)
        except Exception as e:  # noqa: BLE001 - the archive is another service; say what failed
            return _error(web, 503, f"archive unavailable: {type(e).__name__}: {e}")
        if report.state is None and not report.failures:
            return _error(web, 404, f"no archived operations of {object_id!r}")
        body = report.as_dict(history_limit=limit)
        body["region"] = self.region
        return web.bytes(orjson.dumps(body, default=str), content_type="application/json")

    async def digest(self, web: faust.web.Web, request: Any) -> faust.web.Response:
        # Kept as objects change (streams/state_digests.py): the answer costs O(partitions) and the
        # objects changed since the last timer tick, refreshed in slices that never hold the loop.
        return web.json(self.digests.body(self.region, await self.digests.current()))

    def digest_body(self) -> dict[str, Any]:
        """Digest of the locally owned state, per partition (jarvis/state_digest.py), in one go."""
        return self.digests.body(self.region, self.digests.current_now())


def install_query_views(app: faust.App, state: FoldState, max_watchers: int, conf: Settings | None = None) -> None:
    s = conf or settings()
    hub = WatchHub(state.cache.client, state.region, max_watchers)
    view = AuthView(state.cache, app.conf.topic_partitions, FileAuthStore(s.home))
    audit = AuditSink(s.bootstrap(state.region), state.region, "query", s)
    auth = HttpAuth(view, audit, oidc=OidcVerifier.from_settings(s))
    QueryViews(state, app.conf.topic_partitions, hub, auth).install(app)

    async def keep_auth_view() -> None:
        await view.run()

    app.task(keep_auth_view)


def _archive_replay(object_id: str, at_hlc: int | None) -> Any:
    return Replayer.from_settings(settings(), "fold").from_archive(object_id, at_hlc)
