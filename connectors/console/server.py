"""The console's HTTP server: static pages plus a JSON API that proxies and aggregates the region's
query API, its rejected and dead-letter topics and the regions' replication health.

The browser talks only to this server (same origin, so the Content-Security-Policy can forbid every
other source); this server talks to the query API over HTTP and reads topics with confluent-kafka.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.resources
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from connectors.access_audit import AuditSink
from connectors.auth_view import AuthView
from connectors.console import shape
from connectors.console.health import measure_forever
from connectors.console.topic_tail import rejected_row, tail
from connectors.http_auth import PRINCIPAL, HttpAuth
from connectors.http_limits import REQUEST_LIMITS
from connectors.http_tls import client_context, server_context
from connectors.ingest import op_ids
from connectors.oidc import OidcVerifier
from connectors.redis_cache import RedisCache
from connectors.regions import agreement, digests, mirror_lag
from connectors.trace import Tracer
from jarvis import topics
from jarvis.config import Settings
from jarvis.roles import web_port
from jarvis.security.apikeys import AuthStore, Principal
from jarvis.security.key_store import FileAuthStore
from jarvis.trace import start_ms
from pipelines.loader import Pipelines, pipelines

REQUESTS = Counter("jarvis_console_requests_total", "Console API requests", ["region", "route", "status"])
UPSTREAM = Histogram(
    "jarvis_console_upstream_seconds", "Time the query API took to answer the console", ["region"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip

# Same origin only, no inline script or style, no plugins, no framing: data shown on a page can
# never become code, even if some text were ever put into markup by mistake.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
TASK_SCAN_LIMIT = 5000  # task objects read for the Tasks page at most

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every shipped page file, read once through importlib.resources (works from a wheel too)."""
    root = importlib.resources.files("connectors.console") / "static"
    out = {}
    for f in root.iterdir():
        suffix = "." + f.name.rsplit(".", 1)[-1]
        if f.is_file() and suffix in STATIC_TYPES:
            out[f.name] = (f.read_bytes(), STATIC_TYPES[suffix])
    return out


class Console:
    def __init__(self, settings: Settings, region: str, auth: HttpAuth,
                 pipes: Pipelines | None = None, measure: bool = False) -> None:  # fmt: skip
        self.settings, self.region = settings, region
        self.query_url = settings.region_config(region).query_url
        self.bootstrap = settings.bootstrap(region)
        self.auth = auth
        self.pipes = pipes or pipelines()
        self.files = static_files()
        self.http: aiohttp.ClientSession | None = None
        self.measure = measure  # publish replication gauges (connectors/console/health.py)
        self._measuring: asyncio.Task[None] | None = None

    # -- plumbing ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.headers_mw, self.auth.middleware()])
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/static/{name}", self.static)
        r.add_get("/metrics", self.metrics)
        r.add_get("/healthz", self.healthz)
        r.add_get("/api/session", self.session)
        r.add_get("/api/pipelines", self.pipelines)
        r.add_get("/api/objects", self.list_objects)
        r.add_get("/api/objects/{object_id}", self.get_object)
        r.add_get("/api/objects/{object_id}/range", self.passthrough("range"))
        r.add_get("/api/objects/{object_id}/path", self.passthrough("path"))
        r.add_get("/api/objects/{object_id}/history", self.passthrough("history"))
        r.add_get("/api/objects/{object_id}/watch", self.watch)
        r.add_get("/api/regions", self.regions)
        r.add_get("/api/rejected", self.rejected)
        r.add_get("/api/tasks", self.tasks)
        r.add_get("/api/trace", self.trace)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            connector=aiohttp.TCPConnector(ssl=client_context(self.settings) or True),
        )
        if self.measure:
            self._measuring = asyncio.create_task(measure_forever(self.settings, self.region))

    async def _close(self, _: web.Application) -> None:
        if self._measuring is not None:
            self._measuring.cancel()
        if self.http is not None:
            await self.http.close()

    @web.middleware
    async def headers_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            resp = e
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
        REQUESTS.labels(self.region, route, str(resp.status)).inc()
        if not resp.prepared:
            resp.headers["Content-Security-Policy"] = CSP
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
            resp.headers.setdefault("Cache-Control", "no-store")
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            raise resp
        return resp

    def _readable(self, request: web.Request, object_id: str) -> None:
        self.auth.require_read(request, object_id)

    async def upstream(self, request: web.Request, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET of the region's query API as the caller (its key forwarded: the query API applies the
        same role again)."""
        assert self.http is not None
        t0 = time.perf_counter()
        try:
            async with self.http.get(self.query_url + path, params=params, headers=_forwarded(request),
                                     timeout=aiohttp.ClientTimeout(total=30)) as resp:  # fmt: skip
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            return 502, {"error": f"the query API of {self.region} did not answer: {type(e).__name__}: {e}"}
        finally:
            UPSTREAM.labels(self.region).observe(time.perf_counter() - t0)
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError:
            return 502, {"error": f"the query API answered {status} with non-JSON"}

    # -- pages ------------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        body, ctype = self.files["index.html"]
        return web.Response(body=body, content_type=ctype)

    async def static(self, request: web.Request) -> web.Response:
        f = self.files.get(request.match_info["name"])
        if f is None:
            raise web.HTTPNotFound()
        return web.Response(body=f[0], content_type=f[1], headers={"Cache-Control": "no-cache"})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "region": self.region})

    # -- API --------------------------------------------------------------------------------------
    async def session(self, request: web.Request) -> web.Response:
        p = request.get(PRINCIPAL)
        if p is None:
            return _json({"auth_required": True, "principal": None})
        who = {"name": p.name, "role": p.role.name, "read": list(p.role.read), "admin": p.role.admin}
        return _json({"auth_required": True, "region": self.region,
                      "regions": list(self.settings.region_names), "principal": who})  # fmt: skip

    async def pipelines(self, request: web.Request) -> web.Response:
        out: dict[str, dict[str, str]] = {}
        for rule in self.pipes.rules.values():
            out.setdefault(rule.pipeline, {})[rule.prefix] = rule.crdt_type
        return _json({"pipelines": out})

    async def list_objects(self, request: web.Request) -> web.Response:
        q = request.query
        params = {"prefix": q.get("prefix", ""), "limit": q.get("limit", "50")}
        if q.get("after"):
            params["after"] = q["after"]
        status, body = await self.upstream(request, "/v1/objects", params)
        if status == 200:
            p = request[PRINCIPAL]
            body["objects"] = [o for o in body["objects"] if _can_read(p, o.get("object_id"))]
        return _json(body, status)

    async def get_object(self, request: web.Request) -> web.Response:
        oid = request.match_info["object_id"]
        self._readable(request, oid)
        status, view = await self.upstream(request, f"/v1/objects/{_q(oid)}")
        if status != 200:
            return _json(view, status)
        detail: dict[str, Any] = {}
        t = view.get("type")
        if t == "workflow":
            detail["timeline"] = [asdict(s) for s in shape.workflow_timeline(view["value"].get("history", []))]
        if t in ("gcounter", "pncounter", "lww"):
            hs, hist = await self.upstream(request, f"/v1/objects/{_q(oid)}/history", {"limit": "10000"})
            if hs != 200:
                detail["history_error"] = hist.get("error") if isinstance(hist, dict) else str(hs)
            elif t == "lww":
                rule = self.pipes.rule_for(oid)
                detail["register"] = shape.register_detail(hist["history"], rule.resolver if rule else None)
                detail["resolver"] = (rule.resolver if rule else None) or "latest"
            else:
                detail["contributions"] = shape.counter_contributions(hist["history"])
        view["detail"] = detail
        view["updated_time"] = shape.hlc_time(view["updated_hlc"]) if view.get("updated_hlc") else None
        return _json(view)

    def passthrough(self, what: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            oid = request.match_info["object_id"]
            self._readable(request, oid)
            status, body = await self.upstream(request, f"/v1/objects/{_q(oid)}/{what}", dict(request.query))
            return _json(body, status)

        handle.__name__ = what
        return handle

    async def watch(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events relayed from the query API's /watch as they come (no buffering)."""
        oid = request.match_info["object_id"]
        self._readable(request, oid)
        assert self.http is not None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "Content-Security-Policy": CSP})  # fmt: skip
        try:
            async with self.http.get(f"{self.query_url}/v1/objects/{_q(oid)}/watch", headers=_forwarded(request)) as up:
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
        except (aiohttp.ClientError, ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def regions(self, request: web.Request) -> web.Response:
        p = request[PRINCIPAL]
        self.auth.require(request, p.role.reads_everything, "see the regions' digests (it needs read on '*')")
        auth = request.headers.get("Authorization")

        def read() -> dict[str, Any]:
            try:
                lag = [vars(x) for x in mirror_lag(self.settings, "console")]
                lag_error = None
            except Exception as e:  # noqa: BLE001 - Kafka is another service; show what failed
                lag, lag_error = [], f"{type(e).__name__}: {e}"
            d = digests(self.settings, timeout=5, authorization=auth)
            agree, differing = agreement(d)
            return {"regions": list(self.settings.region_names), "lag": lag, "lag_error": lag_error,
                    "agree": agree, "differing_partitions": differing, "digests": d,
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip

        return _json(await asyncio.to_thread(read))

    async def rejected(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            flt = shape.RejectedFilter(
                reason=q.get("reason", ""), node=q.get("node", ""), prefix=q.get("prefix", ""),
                since_ms=_ms(q.get("since")), until_ms=_ms(q.get("until")),
            )  # fmt: skip
            limit = max(1, min(10_000, int(q.get("limit", "2000"))))
        except ValueError as e:
            return _json({"error": f"bad filter: {e} (since/until are ISO-8601)"}, 400)
        try:
            rows = await asyncio.to_thread(
                tail, self.bootstrap, topics.REJECTED, rejected_row, limit, flt.since_ms, settings=self.settings
            )
        except Exception as e:  # noqa: BLE001
            return _json({"error": f"Kafka did not answer: {type(e).__name__}: {e}"}, 502)
        p = request[PRINCIPAL]
        rows = [r for r in rows if flt.matches(r) and _can_read(p, r.get("object_id"))]
        rows.reverse()  # newest first
        fmt = q.get("format", "")
        if fmt == "csv":
            return web.Response(text=shape.rejected_csv(rows), content_type="text/csv",
                                headers={"Content-Disposition": 'attachment; filename="rejected.csv"'})  # fmt: skip
        if fmt == "json":
            return web.Response(body=orjson.dumps(rows, option=orjson.OPT_INDENT_2), content_type="application/json",
                                headers={"Content-Disposition": 'attachment; filename="rejected.json"'})  # fmt: skip
        reasons: dict[str, int] = {}
        for r in rows:
            for reason in r["reasons"]:
                reasons[reason] = reasons.get(reason, 0) + 1
        return _json({"rows": rows[:500], "total": len(rows), "reasons": reasons})

    async def tasks(self, request: web.Request) -> web.Response:
        p = request[PRINCIPAL]
        views: list[dict[str, Any]] = []
        after: str | None = None
        while len(views) < TASK_SCAN_LIMIT:
            params = {"prefix": "task:", "limit": "1000", **({"after": after} if after else {})}
            status, body = await self.upstream(request, "/v1/objects", params)
            if status != 200:
                return _json(body, status)
            views += [v for v in body["objects"] if _can_read(p, v.get("object_id"))]
            after = body.get("next")
            if not after:
                break

        def dead(value: bytes, ts: int) -> dict[str, Any]:
            try:
                d = orjson.loads(value)
            except orjson.JSONDecodeError:
                return {"error": "undecodable dead letter", "at_ms": ts}
            return {"task_id": d.get("task", {}).get("task_id"), "error": d.get("error"),
                    "at_ms": d.get("at_ms", ts), "task": d.get("task")}  # fmt: skip

        dead_letters: list[dict[str, Any]] = []
        if p.role.reads_everything:  # dead letters carry whole tasks, of any object
            try:
                dead_letters = await asyncio.to_thread(
                    tail, self.bootstrap, topics.TASKS_DEAD, dead, 500, settings=self.settings
                )
            except Exception as e:  # noqa: BLE001
                dead_letters = [{"error": f"Kafka did not answer: {type(e).__name__}: {e}"}]
        return _json({"by_state": shape.tasks_by_state(views), "scanned": len(views),
                      "dead_letters": dead_letters[::-1]})  # fmt: skip

    async def trace(self, request: web.Request) -> web.Response:
        """Where one operation went and when (`jarvis trace`), for the operation page."""
        q = request.query
        op_id, oid = q.get("op", "").strip(), q.get("object", "").strip()
        if not op_id or not oid:
            return _json({"error": "give the operation's id (op) and its object's id (object)"}, 400)
        self._readable(request, oid)
        try:
            parsed = op_ids.parse(op_id)
            since_ms = _ms(q.get("since")) or start_ms(parsed and parsed[1], int(time.time() * 1000))
        except ValueError as e:
            return _json({"error": f"bad since: {e} (ISO-8601)"}, 400)
        try:
            t = await asyncio.to_thread(Tracer(self.settings, "console").trace, op_id, oid, since_ms)
        except Exception as e:  # noqa: BLE001 - Kafka is another service; say what failed
            return _json({"error": f"Kafka did not answer: {type(e).__name__}: {e}"}, 502)
        if t is None:
            at = dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC).isoformat(timespec="seconds")
            return _json({"error": f"no region's ingress holds operation {op_id} of {oid} since {at}"}, 404)
        return _json(t.to_dict())


def _can_read(p: Principal, object_id: str | None) -> bool:
    """A record naming no object (an undecodable message) needs a role that reads everything."""
    return p.role.reads_everything if object_id is None else p.role.may_read(object_id)


def _forwarded(request: web.Request) -> dict[str, str]:
    auth = request.headers.get("Authorization")
    return {"Authorization": auth} if auth else {}


def _q(object_id: str) -> str:
    return urllib.parse.quote(object_id, safe="")


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    t = dt.datetime.fromisoformat(iso)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body, default=str), status=status, content_type="application/json")


def console_auth(store: AuthStore, audit: AuditSink | None = None, oidc: OidcVerifier | None = None) -> HttpAuth:
    """Pages and scripts (the login page) need no key; /api/session answers without one."""
    return HttpAuth(store, audit, public=lambda path: not path.startswith("/api/"), optional=("/api/session",),
                    oidc=oidc)  # fmt: skip


def run(settings: Settings, region: str, instance: int = 0) -> None:
    """The `console` worker: serve the console of `region` on its web port until stopped."""
    cache = RedisCache(settings.redis_url, region)
    view = AuthView(cache, settings.partitions, FileAuthStore(settings.home))
    auth = console_auth(view, AuditSink(settings.bootstrap(region), region, "console", settings),
                        OidcVerifier.from_settings(settings))  # fmt: skip
    console = Console(settings, region, auth, measure=True)
    app = console.app()

    async def start_view(_: web.Application) -> None:
        view.start()

    app.on_startup.append(start_view)
    port = web_port(settings, "console", region, instance)
    print(f"console of {region} on {settings.http_url(port)}/", flush=True)
    web.run_app(
        app, host=settings.host, port=port, print=None, access_log=None, ssl_context=server_context(settings),
        **REQUEST_LIMITS,
    )
