"""Helpers for tests that drive the whole pipeline: SDK in, query API out."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from connectors import api_client, http_tls
from connectors.trust_admin import dev_trust
from jarvis.config import Settings
from jarvis.config import settings as default_settings
from jarvis.security.keys import ensure_node_key
from tests.model import SentOp


def get_json(url: str, timeout: float = 5.0, key: str | None = None) -> tuple[int, Any]:
    """api_client.get_json, and (0, None) while the worker does not answer (it is (re)starting)."""
    try:
        return api_client.get_json(url, timeout, key=key)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def object_url(query_url: str, object_id: str) -> str:
    return f"{query_url}/v1/objects/{urllib.parse.quote(object_id)}"


def read_value(query_url: str, object_id: str, key: str | None = None) -> Any:
    status, body = get_json(object_url(query_url, object_id), key=key)
    return body["value"] if status == 200 else None


def normalize(crdt_type: str, value: Any) -> Any:
    """The query API's value in the model's shape."""
    if value is None:
        return None
    if crdt_type in ("gset", "orset"):
        return sorted(value)
    if crdt_type == "timeseries":
        return sorted((p["timestamp"], p["value"]) for p in value)
    if crdt_type == "graph":
        return {"vertices": sorted(value["vertices"]), "edges": sorted([list(e) for e in value["edges"]])}
    if crdt_type == "workflow":
        return value["state"]
    return value


def recorder(into: list[SentOp]) -> Callable[[Any], None]:
    def record(op: Any) -> None:
        into.append(SentOp(op.object_id, op.crdt_type, op.kind, dict(op.args), op.hlc, op.node_id))

    return record


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A raw connection to one of the stack's HTTP servers, through TLS (handshake done) unless
    the stack is insecure: for tests that send bytes no HTTP client would."""
    sock = socket.create_connection((host, port), timeout=timeout)
    ctx = http_tls.client_context(default_settings())
    return ctx.wrap_socket(sock, server_hostname=host) if ctx else sock


def trust_node(settings: Settings, node_id: str) -> None:
    """Grant a node the test starts by hand (an extra agent, a named writer) `*`, as an operator
    would with `jarvis keys trust`: the stack trusts only its own nodes."""
    dev_trust(settings, ensure_node_key(node_id, keys_dir=settings.keys_dir))
