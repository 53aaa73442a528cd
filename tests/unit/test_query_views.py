"""The query views (streams/query.py) on a real, unstarted Faust app: a routed read answers 503 while
the router cannot route (told by what is missing, not by an exception), and the views' answers."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from aiohttp.test_utils import make_mocked_request

from jarvis.materialize import ObjectState, apply
from jarvis.ops import Dot, Operation
from jarvis.partitioning import partition_for
from pipelines.loader import object_factory, pipelines
from streams.fold_state import FoldState
from streams.query import QueryViews, ViewRouter, not_ready_reason
from tests.unit.test_fold_state import TableStandIn


def test_not_ready_is_told_by_what_the_router_lacks() -> None:
    assert not_ready_reason(0, True, True, False) == "partitions not assigned yet"
    assert not_ready_reason(6, False, False, False) == "its producer is not started yet"
    assert not_ready_reason(6, True, False, True) == "partitions being reassigned"
    assert not_ready_reason(6, True, False, False) is None  # routable once the metadata is fetched
    assert not_ready_reason(6, True, True, True) is None


def _app() -> faust.App:
    return faust.App("query-test", broker="kafka://127.0.0.1:1", store="memory://", web_port=1)


def _counter(object_id: str, n: int) -> ObjectState:
    st = object_factory(pipelines())(object_id, "pncounter")
    op = Operation(f"op-{object_id}", object_id, "pncounter", "increment", {"n": n}, "n1", "eu", 1)
    assert apply(st, op, Dot("eu", 0, 1, 0))
    return st


def _views(objects: dict[str, ObjectState], recovering: frozenset[int] = frozenset()) -> QueryViews:
    state = FoldState("eu", TableStandIn(), pipelines(), cache=None)  # type: ignore[arg-type]
    for oid, st in objects.items():
        state.changed(oid, 0, st)
    state.readiness.on_assigned(set(range(6)) - recovering, generation=1)
    state.readiness.on_recovered(generation=1)
    state.readiness.on_assigned(range(6), generation=2)  # `recovering` newly assigned, not recovered
    return QueryViews(state, partitions=6)


def _call_with_headers(view: Any, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async def run() -> tuple[int, Any, Any]:
        app = _app()
        response = await view(faust.web.View(app, app.web), make_mocked_request("GET", path), **kwargs)
        return response.status, orjson.loads(response.body), response.headers

    return asyncio.run(run())


def _call(view: Any, path: str, **kwargs: Any) -> tuple[int, Any]:
    async def run() -> tuple[int, Any]:
        app = _app()
        response = await view(faust.web.View(app, app.web), make_mocked_request("GET", path), **kwargs)
        return response.status, orjson.loads(response.body)

    return asyncio.run(run())


def test_a_routed_read_answers_503_while_no_partition_owner_is_known() -> None:
    called: list[str] = []

    async def view(web: Any, request: Any, object_id: str) -> Any:
        called.append(object_id)
        return web.json({})

    async def run() -> tuple[str | None, Any]:
        app = _app()
        table = app.Table("objects", partitions=6, key_type=bytes, value_type=bytes)
        router = ViewRouter(app, table)
        assert router.changelog == "query-test-objects-changelog"
        assert router.routable() == 0
        guarded = router.routed(view)
        request = make_mocked_request("GET", "/v1/objects/ctr:a", match_info={"object_id": "ctr:a"})
        return await router.not_ready(), await guarded(
            faust.web.View(app, app.web), request, object_id="ctr:a"
        )

    reason, response = asyncio.run(run())
    assert reason == "partitions not assigned yet"
    assert response.status == 503
    assert orjson.loads(response.body) == {
        "error": "the fold is starting (partitions not assigned yet); retry"
    }
    assert called == []


def test_object_views_answer_for_known_objects_and_404_or_400_otherwise() -> None:
    views = _views({"ctr:a": _counter("ctr:a", 4)})
    status, body = _call(views.get_object, "/v1/objects/ctr:a", object_id="ctr:a")
    assert status == 200 and body["object_id"] == "ctr:a" and body["value"] == 4
    status, body = _call(views.get_object, "/v1/objects/ctr:b", object_id="ctr:b")
    assert status == 404 and body == {"error": "unknown object 'ctr:b' in region eu"}
    status, body = _call(views.ts_range, "/v1/objects/ctr:a/range", object_id="ctr:a")
    assert status == 400 and body == {"error": "ctr:a is a pncounter, not a timeseries"}
    status, body = _call(views.graph_path, "/v1/objects/ctr:a/path", object_id="ctr:a")
    assert status == 400 and body == {"error": "ctr:a is a pncounter, not a graph"}


def test_the_digest_depends_on_the_values_not_on_the_order_they_were_folded_in() -> None:
    a = _views({"ctr:a": _counter("ctr:a", 1), "ctr:b": _counter("ctr:b", 2)}).digest_body()
    b = _views({"ctr:b": _counter("ctr:b", 2), "ctr:a": _counter("ctr:a", 1)}).digest_body()
    c = _views({"ctr:a": _counter("ctr:a", 1), "ctr:b": _counter("ctr:b", 3)}).digest_body()
    assert a == b and a["objects"] == 2 and a["region"] == "eu"
    assert a != c


def test_a_read_in_a_partition_still_recovering_answers_503_recovering_never_404() -> None:
    recovering = partition_for("ctr:b", 6)
    views = _views({"ctr:a": _counter("ctr:a", 4)}, recovering=frozenset({recovering}))
    for view, path in ((views.get_object, ""), (views.ts_range, "/range"), (views.graph_path, "/path")):
        status, body, headers = _call_with_headers(view, f"/v1/objects/ctr:b{path}", object_id="ctr:b")
        assert status == 503 and headers["Retry-After"] == "1"
        assert body == {"error": "recovering", "retry_after": 1, "region": "eu", "partition": recovering}
    # An object of a recovered partition that the table lacks is unknown for sure.
    other = next(f"ctr:c{i}" for i in range(100) if partition_for(f"ctr:c{i}", 6) != recovering)
    status, body = _call(views.get_object, f"/v1/objects/{other}", object_id=other)
    assert status == 404
