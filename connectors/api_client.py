"""The client side of the HTTP APIs' authentication: which Bearer key to send, and GETs that send it.

HTTPS is verified against the project CA (connectors/http_tls.py). The key is JARVIS_API_KEY if set, else the admin key `jarvis stack up` leaves at
JARVIS_HOME/auth/admin.key (so the CLI, the demo, benchmarks and tests on the stack's host need no
setup), else none (the APIs then answer 401, which says what to do).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from connectors import http_tls
from jarvis.config import Settings
from jarvis.config import settings as default_settings


def api_key(settings: Settings | None = None) -> str | None:
    s = settings or default_settings()
    if s.api_key:
        return s.api_key
    try:
        return s.admin_key_file.read_text().strip() or None
    except OSError:
        return None


def auth_headers(settings: Settings | None = None, key: str | None = None) -> dict[str, str]:
    key = key or api_key(settings)
    return {"Authorization": f"Bearer {key}"} if key else {}


def request(url: str, *, key: str | None = None, settings: Settings | None = None,
            headers: dict[str, str] | None = None, data: bytes | None = None,
            method: str | None = None) -> urllib.request.Request:  # fmt: skip
    return urllib.request.Request(url, data=data, method=method,
                                  headers={**auth_headers(settings, key), **(headers or {})})  # fmt: skip


def urlopen(url: str | urllib.request.Request, timeout: float = 10.0, *, key: str | None = None,
            settings: Settings | None = None) -> Any:  # fmt: skip
    """urllib's urlopen of a GET (or of a `request(...)`), with the Bearer key, verifying HTTPS
    against the project CA."""
    req = request(url, key=key, settings=settings) if isinstance(url, str) else url
    return urllib.request.urlopen(req, timeout=timeout, context=http_tls.client_context(settings or default_settings()))


def get_json(url: str, timeout: float = 5.0, *, key: str | None = None,
             settings: Settings | None = None) -> tuple[int, Any]:  # fmt: skip
    """(status, JSON body) of a GET; HTTP errors are answers too (their JSON body, else None)."""
    try:
        with urlopen(url, timeout, key=key, settings=settings) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
