"""Hot state in Redis: the fold writes every changed object's latest value, batched (one script call
per batch), and publishes a change notification, so other services read state without HTTP.

Keys (per region, so regions can share one Redis):
  jarvis:<region>:obj:<object_id>     JSON of the object's query view
  jarvis:<region>:objects             sorted set of object ids (score 0: lexicographic listing)
  jarvis:<region>:changes             channel: every change, payload = object id
  jarvis:<region>:watch:<object_id>   channel: changes of one object, payload = its JSON view
  jarvis:<region>:built:<partition>   set once the fold has written every object of the partition
                                      (a Redis restart or flush drops it: the fold then rebuilds)

Redis is only a cache: every failure to reach it is raised as CacheUnavailable, which the fold
survives (it rebuilds the cache when Redis is back) and the query API answers with a 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jarvis.errors import JarvisError

P = ParamSpec("P")
R = TypeVar("R")


class CacheUnavailable(JarvisError, ConnectionError):
    """Redis does not answer (down, restarting, unreachable): the cache cannot be read or written."""


def _unavailable_on_error(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as e:
            raise CacheUnavailable(f"Redis unavailable: {type(e).__name__}: {e}") from e

    return guarded


def obj_key(region: str, object_id: str) -> str:
    return f"jarvis:{region}:obj:{object_id}"


def index_key(region: str) -> str:
    return f"jarvis:{region}:objects"


def changes_channel(region: str) -> str:
    return f"jarvis:{region}:changes"


def watch_channel(region: str, object_id: str) -> str:
    return f"jarvis:{region}:watch:{object_id}"


def built_key(region: str, partition: int) -> str:
    return f"jarvis:{region}:built:{partition}"


# One command per batch, the loop inside Redis: as a pipeline of SET, PUBLISH and PUBLISH per object,
# packing the commands and parsing their replies in redis-py took a quarter of the fold's CPU while
# it folded 58,000 ops/s over 1,000 hot objects (py-spy). KEYS: the index, then one obj key per
# object; ARGV: the watch channels' prefix, the changes channel, then id and view per object.
_PUT_MANY = """
local watch, changes = ARGV[1], ARGV[2]
for i = 2, #KEYS do
  local id, view = ARGV[2 * i - 1], ARGV[2 * i]
  redis.call('SET', KEYS[i], view)
  redis.call('ZADD', KEYS[1], 0, id)
  redis.call('PUBLISH', watch .. id, view)
  redis.call('PUBLISH', changes, id)
end
return #KEYS - 1
"""


POOL_CONNECTIONS = 64  # per worker: the fold's flushes, the query views' reads, one pub/sub


class RedisCache:
    def __init__(self, url: str, region: str) -> None:
        self.region = region
        # A blocking pool: 1,000 /watch streams starting at once each read their object's state, and
        # redis-py's default pool raised MaxConnectionsError for the excess (181 of them got a 503,
        # and the fold's own flush failed too). Callers now wait for a connection instead.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_CONNECTIONS, timeout=5, socket_timeout=5
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self._put_many = self.client.register_script(_PUT_MANY)

    @_unavailable_on_error
    async def put_many(self, views: Mapping[str, bytes]) -> None:
        """One round trip, and one command, for a whole batch of changed objects."""
        if not views:
            return
        prefix = obj_key(self.region, "")
        keys = [index_key(self.region), *(prefix + object_id for object_id in views)]
        args: list[str | bytes] = [watch_channel(self.region, ""), changes_channel(self.region)]
        for object_id, view in views.items():
            args.append(object_id)
            args.append(view)
        await self._put_many(keys=keys, args=args)

    @_unavailable_on_error
    async def get(self, object_id: str) -> bytes | None:
        return await self.client.get(obj_key(self.region, object_id))

    @_unavailable_on_error
    async def views(self, object_ids: list[str]) -> list[bytes | None]:
        if not object_ids:
            return []
        return await self.client.mget([obj_key(self.region, i) for i in object_ids])

    @_unavailable_on_error
    async def unbuilt(self, partitions: Iterable[int]) -> set[int]:
        """Which of `partitions` Redis does not hold completely (no marker: never rebuilt since
        Redis started empty or was flushed)."""
        parts = sorted(partitions)
        if not parts:
            return set()
        marks = await self.client.mget([built_key(self.region, p) for p in parts])
        return {p for p, mark in zip(parts, marks, strict=True) if mark is None}

    @_unavailable_on_error
    async def mark_built(self, partitions: Iterable[int]) -> None:
        parts = list(partitions)
        if parts:
            await self.client.mset({built_key(self.region, p): b"1" for p in parts})

    @_unavailable_on_error
    async def server_id(self) -> Any:
        """Changes whenever Redis restarts (a restarted Redis holds nothing of this cache)."""
        return (await self.client.info("server")).get("run_id")

    @_unavailable_on_error
    async def list_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        # One ZRANGEBYLEX with LIMIT: O(log n + limit) whatever the number of objects. Bounds as
        # bytes: the str "\xff" is sent as UTF-8 (c3 bf), below ids whose next character is past
        # U+00FF, which pages never reached; the byte ff occurs in no UTF-8 text, so prefix + ff is
        # above every id with the prefix. A cursor before the prefix starts at the prefix.
        p = prefix.encode()
        lo = b"(" + after.encode() if after and after >= prefix else b"[" + p
        hi = b"[" + p + b"\xff"
        ids = await self.client.zrangebylex(index_key(self.region), lo, hi, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    async def close(self) -> None:
        await self.client.aclose()
