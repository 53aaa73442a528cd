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
"""

from __future__ import annotations

import asyncio
import hashlib
from functools import partial
from typing import Any

import faust
import orjson
from aiohttp import web as aioweb

from connectors.redis_cache import watch_channel
from jarvis.partitioning import partition_for

MAX_PAGE = 1000


def _error(web: faust.web.Web, status: int, message: str) -> faust.web.Response:
    return web.json({"error": message}, status=status)


def _until_ready(view: Any, changelog: str) -> Any:
    """Answer 503 (JSON, retryable) while the table router has no partition assignment yet.

    The router finds an object's partition through the producer's cached metadata, which can lack
    the table's changelog topic while the partitions are already assigned: in the second region of
    a fresh stack every routed read failed that way for ~4 minutes, until aiokafka's 5-minute
    metadata refresh. Then the metadata of that topic is fetched and the read tried once more."""

    async def guarded(web: faust.web.Web, request: Any, **kwargs: Any) -> faust.web.Response:
        try:
            return await view(web, request, **kwargs)
        except (TypeError, KeyError, AttributeError) as e:
            app = web.app
            if app.rebalancing or not app.assignor.assigned_actives():
                return _error(web, 503, f"the fold is starting (partitions not assigned yet): {e}; retry")
            if not isinstance(e, TypeError):
                raise
            await app.producer._ensure_producer().partitions_for(changelog)  # Faust has no public way
            return await view(web, request, **kwargs)

    guarded.__name__ = view.__name__
    return guarded


def install_query_views(app: faust.App, state: Any) -> None:
    table = state.table
    region = state.region
    until_ready = partial(_until_ready, changelog=table.changelog_topic.get_topic_name())

    def lookup(web: faust.web.Web, object_id: str) -> tuple[Any, faust.web.Response | None]:
        st = state.peek(object_id)
        if st is None:
            return None, _error(web, 404, f"unknown object {object_id!r} in region {region}")
        return st, None

    @app.page("/v1/objects/{object_id}")
    @until_ready
    @app.table_route(table=table, match_info="object_id")
    async def get_object(web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        st, err = lookup(web, object_id)
        return err or web.bytes(state.view_bytes(st), content_type="application/json")

    @app.page("/v1/objects")
    async def list_objects(web: faust.web.Web, request: Any) -> faust.web.Response:
        prefix = request.query.get("prefix", "")
        after = request.query.get("after") or None
        try:
            limit = min(MAX_PAGE, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return _error(web, 400, "limit must be an integer")
        ids = await state.cache.list_ids(prefix, after, limit)
        views = []
        if ids:
            raw = await state.cache.client.mget([f"jarvis:{region}:obj:{i}" for i in ids])
            views = [orjson.loads(r) for r in raw if r is not None]
        nxt = ids[-1] if len(ids) == limit else None
        return web.json({"region": region, "prefix": prefix, "objects": views, "next": nxt})

    @app.page("/v1/objects/{object_id}/range")
    @until_ready
    @app.table_route(table=table, match_info="object_id")
    async def ts_range(web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        st, err = lookup(web, object_id)
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

    @app.page("/v1/objects/{object_id}/path")
    @until_ready
    @app.table_route(table=table, match_info="object_id")
    async def graph_path(web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        st, err = lookup(web, object_id)
        if err:
            return err
        if st.crdt_type != "graph":
            return _error(web, 400, f"{object_id} is a {st.crdt_type}, not a graph")
        a, b = request.query.get("from"), request.query.get("to")
        if not a or not b:
            return _error(web, 400, "path needs ?from=<vertex>&to=<vertex>")
        return web.json({"object_id": object_id, "from": a, "to": b, "path": st.value.shortest_path(a, b)})

    @app.page("/v1/objects/{object_id}/watch")
    async def watch(web: faust.web.Web, request: Any, object_id: str) -> Any:
        resp = aioweb.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        pubsub = state.cache.client.pubsub()
        await pubsub.subscribe(watch_channel(region, object_id))
        try:
            current = await state.cache.get(object_id)
            if current is not None:
                await resp.write(b"event: state\ndata: " + current + b"\n\n")
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=15.0)
                if msg is None:
                    await resp.write(b": keep-alive\n\n")  # lets us notice a client that left
                    continue
                await resp.write(b"event: change\ndata: " + msg["data"] + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()
        return resp

    @app.page("/v1/objects/{object_id}/history")
    async def history(web: faust.web.Web, request: Any, object_id: str) -> faust.web.Response:
        import datetime as dt

        from jarvis.replay import hlc_at

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
        body["region"] = region
        return web.bytes(orjson.dumps(body, default=str), content_type="application/json")

    @app.page("/v1/digest")
    async def digest(web: faust.web.Web, request: Any) -> faust.web.Response:
        n = app.conf.topic_partitions
        per_partition: dict[int, Any] = {}
        ids = sorted(state.object_ids())
        for oid in ids:
            st = state.peek(oid)
            if st is None:
                continue
            p = partition_for(oid, n)
            h = per_partition.setdefault(p, hashlib.sha256())
            h.update(
                oid.encode() + b"\0" + orjson.dumps(st.value.value(), option=orjson.OPT_SORT_KEYS) + b"\n"
            )
        parts = {str(p): h.hexdigest() for p, h in sorted(per_partition.items())}
        return web.json({"region": region, "objects": len(ids), "partitions": parts})


def _archive_replay(object_id: str, at_hlc: int | None) -> Any:
    from connectors.replayer import Replayer
    from jarvis.config import settings

    return Replayer.from_settings(settings()).from_archive(object_id, at_hlc)
