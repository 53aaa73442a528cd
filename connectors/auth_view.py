"""Each HTTP service's local view of the replicated roles and keys (the `auth:` objects).

`jarvis auth ...` writes roles and key records as signed LWW operations to its region; MirrorMaker
carries them to every other region, whose fold folds them like any object and writes their views to
the region's Redis. This view reads them from there: one ZRANGEBYLEX over the `auth:` ids and one
MGET every REFRESH_S (a few dozen records; cheaper than a consumer of every ops topic, and the fold
table would need a routed read per record). So a change made in one region is effective in every
region about a second after its fold applied it.

Fail closed: until a first complete read (Redis answered and holds every partition of the region),
`lookup` raises AuthNotReady and the services answer 503 with Retry-After. A complete read replaces
the view; a failed or partial one (Redis down, being rebuilt) keeps the last complete view, so an
outage of the cache neither locks everyone out nor resurrects a revoked key.

Keys are looked up in the replicated view first; a key id it does not know falls back to the host's
file store (JARVIS_HOME/auth: the admin key `jarvis stack up` makes, and keys made there directly).
A replicated record for the same key id wins, so a file key revoked through the pipeline is revoked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson

from connectors.redis_cache import CacheUnavailable, RedisCache
from jarvis.security.apikeys import (
    BUILTIN_ROLES,
    KEY_OBJECT,
    ROLE_OBJECT,
    AuthNotReady,
    KeyRecord,
    Principal,
    Role,
    key_id_of,
    key_of_record,
    role_of_record,
    verify_key,
)
from jarvis.security.key_store import FileAuthStore

log = logging.getLogger("jarvis.auth")

REFRESH_S = 0.5
PAGE = 1000


class AuthView:
    """An AuthStore over the replicated `auth:` objects (from Redis) and the host's file store."""

    def __init__(self, cache: RedisCache | None, partitions: int, local: FileAuthStore | None) -> None:
        self.cache = cache
        self.partitions = partitions
        self.local = local
        self.roles: dict[str, Role] = {}
        self.keys: dict[str, KeyRecord] = {}
        self.loaded_at: float | None = None  # monotonic time of the last complete read
        self._task: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        return self.loaded_at is not None or self.cache is None

    # -- AuthStore --------------------------------------------------------------------------------
    def lookup(self, key: str) -> Principal | None:
        kid = key_id_of(key)
        if kid is None:
            return None
        if not self.loaded:
            raise AuthNotReady("the roles and keys of this region are not loaded yet")
        record = self.keys.get(kid)
        if record is None and self.local is not None:
            record = self.local.record(kid)  # the host's own keys (the bootstrap admin key)
        if record is None or not verify_key(key, record):
            return None
        return Principal(record.name, kid, self.role(record.role) or Role(record.role))

    def role(self, name: str) -> Role | None:
        if name in BUILTIN_ROLES:
            return BUILTIN_ROLES[name]
        role = self.roles.get(name)
        if role is None and self.local is not None:
            role = self.local.role(name)
        return role

    # -- loading ----------------------------------------------------------------------------------
    def apply(self, views: Iterable[dict[str, Any]]) -> None:
        """Replace the view with these object views (a complete read of the `auth:` objects)."""
        roles: dict[str, Role] = {}
        keys: dict[str, KeyRecord] = {}
        for v in views:
            oid, value = v.get("object_id", ""), v.get("value")
            if oid.startswith(ROLE_OBJECT):
                role = role_of_record(oid[len(ROLE_OBJECT) :], value)
                if role is not None:
                    roles[role.name] = role
            elif oid.startswith(KEY_OBJECT):
                rec = key_of_record(oid[len(KEY_OBJECT) :], value)
                if rec is not None:
                    keys[rec.key_id] = rec
        self.roles, self.keys = roles, keys
        self.loaded_at = time.monotonic()

    async def refresh(self) -> bool:
        """One read from Redis; True if it was complete (and so replaced the view)."""
        cache = self.cache
        if cache is None:
            return True
        try:
            if await cache.unbuilt(range(self.partitions)):
                return False  # a partial cache could lack a revocation: keep what we have
            ids: list[str] = []
            after: str | None = None
            while True:
                page = await cache.list_ids("auth:", after, PAGE)
                ids += page
                if len(page) < PAGE:
                    break
                after = page[-1]
            raw = await cache.views(ids)
        except CacheUnavailable as e:
            log.debug("auth view not refreshed: %s", e)
            return False
        self.apply(orjson.loads(r) for r in raw if r is not None)
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - keep the last view; the next round tries again
                log.exception("auth view refresh failed")
            await asyncio.sleep(REFRESH_S)

    def start(self) -> None:
        if self._task is None and self.cache is not None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
