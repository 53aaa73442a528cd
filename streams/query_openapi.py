"""The query API's OpenAPI 3 document (served at /openapi.json by every fold worker)."""

from __future__ import annotations

from functools import cache
from typing import Any

ID = {"name": "object_id", "in": "path", "required": True,
      "schema": {"type": "string", "minLength": 1, "maxLength": 1024},
      "description": "an object id, `<prefix>:<name>`"}  # fmt: skip


def _q(name: str, schema: dict[str, Any], doc: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": doc}


def _answers(ok: str, *extra: str) -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    out: dict[str, Any] = {
        "200": {"description": ok, "content": {"application/json": {"schema": {"type": "object"}}}},
        "401": err | {"description": "no valid API key"},
        "403": err | {"description": "the key's role may not read this (whether it exists or not)"},
        "503": err | {"description": "recovering, the cache rebuilding or the roles not loaded: retry after Retry-After"},
    }
    for code in extra:
        out[code] = err | {"description": {"400": "bad query parameters", "404": "no such object",
                                           "414": "object id over 1 KB"}[code]}  # fmt: skip
    return out


def _get(summary: str, params: list[dict[str, Any]], ok: str, *extra: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params, "responses": _answers(ok, *extra)}}


@cache
def query_openapi() -> dict[str, Any]:
    num = {"type": "number"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Jarvis Streams query API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "jarvis auth key create"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/objects": _get(
                "A page of object views (only those the key may read), with a `next` cursor",
                [_q("prefix", {"type": "string", "maxLength": 1024}), _q("after", {"type": "string", "maxLength": 1024}),
                 _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
                "a page", "400",
            ),  # fmt: skip
            "/v1/objects/{object_id}": _get("An object's view", [ID], "the view", "404", "414"),
            "/v1/objects/{object_id}/range": _get(
                "A time series' points, or windowed aggregates",
                [ID, _q("from", num), _q("to", num), _q("window", {"type": "number", "exclusiveMinimum": True, "minimum": 0}),
                 _q("agg", {"type": "string", "enum": ["mean", "min", "max", "sum", "count"]})],
                "points or buckets", "400", "404", "414",
            ),  # fmt: skip
            "/v1/objects/{object_id}/path": _get(
                "A graph's shortest path", [ID, _q("from", {"type": "string"}), _q("to", {"type": "string"})],
                "the path", "400", "404", "414",
            ),
            "/v1/objects/{object_id}/history": _get(
                "The archived operations of an object, replayed (signatures checked)",
                [ID, _q("at", {"type": "string", "format": "date-time"}),
                 _q("limit", {"type": "integer", "minimum": 0, "maximum": 10000})],
                "operations and the value", "400", "404",
            ),  # fmt: skip
            "/v1/objects/{object_id}/watch": {"get": {
                "summary": "Server-sent events: the view now, then every change",
                "parameters": [ID],
                "responses": {"200": {"description": "text/event-stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **{k: v for k, v in _answers("").items() if k != "200"}},
            }},  # fmt: skip
            "/v1/digest": _get("Digest of the locally owned state (needs read on '*')", [], "per-partition hashes"),
            "/readyz": {"get": {"security": [], "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "alive"}}}},
            "/openapi.json": {"get": {"security": [], "responses": {"200": {"description": "this document"}}}},
        },
    }
