"""The replicated `auth:` objects of a region as the CLI and the MQTT password files see them: read
through the region's query API with the admin key (connectors/api_client.py)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from connectors.api_client import get_json
from jarvis.config import Settings
from jarvis.security.apikeys import (
    BUILTIN_ROLES,
    KEY_OBJECT,
    ROLE_OBJECT,
    AuthError,
    KeyRecord,
    Role,
    key_of_record,
    role_of_record,
)
from jarvis.security.key_store import FileAuthStore


class Replicated:
    """The `auth:` objects of this region, read through its query API with the admin key."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.url = s.region_config(s.region).query_url

    def objects(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = ""
        while True:
            q = urllib.parse.urlencode({"prefix": prefix, "limit": 1000, **({"after": after} if after else {})})
            status, body = get_json(f"{self.url}/v1/objects?{q}", timeout=10, settings=self.s)
            if status != 200:
                raise AuthError(f"the query API of {self.s.region} answered {status}: {(body or {}).get('error')}"
                                " (is the stack up? is JARVIS_API_KEY an admin key?)")  # fmt: skip
            out += body["objects"]
            after = body.get("next") or ""
            if not after:
                return out

    def roles(self) -> dict[str, Role]:
        out = {}
        for v in self.objects(ROLE_OBJECT):
            role = role_of_record(v["object_id"][len(ROLE_OBJECT) :], v.get("value"))
            if role is not None:
                out[role.name] = role
        return out

    def keys(self) -> dict[str, KeyRecord]:
        out = {}
        for v in self.objects(KEY_OBJECT):
            rec = key_of_record(v["object_id"][len(KEY_OBJECT) :], v.get("value"))
            if rec is not None:
                out[rec.key_id] = rec
        return out

    def value(self, object_id: str) -> Any:
        status, body = get_json(f"{self.url}/v1/objects/{urllib.parse.quote(object_id, safe='')}", settings=self.s)
        return body.get("value") if status == 200 and isinstance(body, dict) else None


def all_keys(s: Settings, rep: Replicated | None = None) -> dict[str, KeyRecord]:
    """The replicated records, and the host's file keys the pipeline does not know."""
    return {r.key_id: r for r in FileAuthStore(s.home).list_keys()} | (rep or Replicated(s)).keys()


def all_roles(s: Settings, rep: Replicated | None = None) -> dict[str, Role]:
    return dict(BUILTIN_ROLES) | {r.name: r for r in FileAuthStore(s.home).roles()} | (rep or Replicated(s)).roles()
