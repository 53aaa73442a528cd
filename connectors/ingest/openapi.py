"""The ingest API's OpenAPI 3 document, its operation schema generated from the CRDT registry, so
the kinds and arguments it documents are the ones the gateway accepts (one vocabulary)."""

from __future__ import annotations

from functools import cache
from typing import Any

from connectors.ingest.requests import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_BODY_BYTES,
    MAX_IDEMPOTENCY_KEY,
    MAX_OPS_PER_REQUEST,
)
from connectors.ingest.waiting import MAX_WAIT_S
from jarvis.crdt import registry as crdt_registry


def operation_schemas() -> list[dict[str, Any]]:
    """One JSON Schema per (CRDT type, kind or alias): object_id, kind, args."""
    out = []
    for name in crdt_registry.names():
        spec = crdt_registry.SPECS[name]
        names = {k: k for k in spec.kinds} | dict(spec.kind_aliases)
        for kind, wire in names.items():
            declared = spec.args.get(wire)
            if declared is None:
                args: dict[str, Any] = {"type": "object"}
            else:
                args = {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {a.name: ({"type": a.json_type} if a.json_type else {}) | ({"description": a.doc} if a.doc else {})
                                   for a in declared},  # fmt: skip
                    "required": [a.name for a in declared if a.required],
                }
            out.append(
                {
                    "title": f"{name} {kind}",
                    "type": "object",
                    "required": ["object_id", "kind"],
                    "additionalProperties": False,
                    "properties": {
                        "object_id": {"type": "string", "pattern": "^[a-z0-9_-]+:.+$", "maxLength": 1024,
                                      "description": f"an object of a {name} prefix of the pipelines"},
                        "kind": {"type": "string", "enum": [kind]},
                        "args": args,
                        "type": {"type": "string", "enum": [name]},
                    },
                }  # fmt: skip
            )
    return out


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


@cache
def ingest_openapi() -> dict[str, Any]:
    err = {"description": "", "content": _json("Error")}
    results = {"content": _json("Results")}
    bearer = [{"bearer": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Jarvis Streams ingest gateway", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "jarvis auth key create"}},
            "schemas": {
                "Operation": {"oneOf": operation_schemas()},
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Result": {
                    "type": "object",
                    "required": ["index", "status"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"type": "string", "enum": ["accepted", "rejected", "not_written", "unavailable", "pending"]},
                        "op_id": {"type": "string"},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        # Under ?wait only: the verdict's details.
                        "dot": {"type": "array", "description": "wait: an accepted operation's dot (region, partition, offset, index)"},
                        "decision": {"type": "string", "enum": ["applied"],
                                     "description": "wait: a bounded-counter decrement or transfer its origin fold applied"},
                    },
                },
                "Results": {"type": "object", "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}}},
                "OpStatus": {
                    "type": "object",
                    "properties": {
                        "op_id": {"type": "string"}, "object_id": {"type": "string"},
                        "state": {"type": "string", "enum": ["on_ingress", "accepted", "rejected"]},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "dot": {"type": "array"}, "principal": {"type": "string"}, "via": {"type": "string"},
                        "folded_in": {"type": "array", "items": {"type": "string"},
                                      "description": "regions whose fold state (changelog) holds the operation"},
                        "pending_in": {"type": "array", "items": {"type": "string"},
                                       "description": "regions whose fold does not hold it yet"},
                    },
                },  # fmt: skip
            },
        },
        "security": bearer,
        "paths": {
            "/v1/ops": {
                "post": {
                    "summary": "Write operations: one, a JSON array, or NDJSON (answered line by line)",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "required": False,
                         "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": IDEMPOTENCY_KEY_PATTERN},
                         "description": "a retry within 24 h gets the same answer and has its effect once"},
                        {"name": "wait", "in": "query", "required": False,
                         "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": MAX_WAIT_S},
                         "description": "JSON bodies: once written, wait up to this many seconds for each operation's "
                                        "verdict (accepted with its dot, rejected with reasons, or pending)"},
                    ],  # fmt: skip
                    "requestBody": {
                        "required": True,
                        "description": f"at most {MAX_BODY_BYTES} bytes and {MAX_OPS_PER_REQUEST} operations (JSON)",
                        "content": {
                            "application/json": {"schema": {"oneOf": [
                                {"$ref": "#/components/schemas/Operation"},
                                {"type": "array", "items": {"$ref": "#/components/schemas/Operation"},
                                 "minItems": 1, "maxItems": MAX_OPS_PER_REQUEST},
                            ]}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },  # fmt: skip
                    "responses": {
                        "200": {"description": "every operation written to ingress (acks=all); with wait, "
                                               "each result its verdict (rejected ones included)", **results},
                        "202": {"description": "with wait: written, some verdicts still pending after wait seconds", **results},
                        "400": {"description": "invalid operations (reasons per operation), or a bad wait; nothing written", **results},
                        "401": err | {"description": "no valid API key"},
                        "403": {"description": "the key's role may not write an object; nothing written", **results},
                        "409": err | {"description": "Idempotency-Key reused with another body"},
                        "413": err | {"description": "body over the limit"},
                        "415": err | {"description": "not application/json or application/x-ndjson"},
                        "503": err | {"description": "Kafka is not keeping up: retry after Retry-After seconds"},
                    },
                }
            },
            "/v1/ops/{op_id}": {
                "get": {
                    "summary": "Where an operation is: on ingress, accepted (with its dot) and folded in which regions, or rejected with reasons",
                    "parameters": [{"name": "op_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "", "content": _json("OpStatus")},
                        "401": err | {"description": "no valid API key"},
                        "403": err | {"description": "the key may not see this object"},
                        "404": err | {"description": "not an operation of this region's ingress"},
                    },
                }
            },
            "/openapi.json": {"get": {"security": [], "responses": {"200": {"description": "this document"}}}},
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "alive"}}}},
        },
    }
