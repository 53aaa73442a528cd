"""Hot state in Redis: the fold writes every changed object's latest value, batched and pipelined,
and publishes a change notification, so other services read state without HTTP.

Keys (per region, so regions can share one Redis):
  jarvis:<region>:obj:<object_id>     JSON of the object's query view
  jarvis:<region>:objects             sorted set of object ids (score 0: lexicographic listing)
  jarvis:<region>:changes             channel: every change, payload = object id
  jarvis:<region>:watch:<object_id>   channel: changes of one object, payload = its JSON view
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis


def obj_key(region: str, object_id: str) -> str:
    return f"jarvis:{region}:obj:{object_id}"


def index_key(region: str) -> str:
    return f"jarvis:{region}:objects"


def changes_channel(region: str) -> str:
    return f"jarvis:{region}:changes"


def watch_channel(region: str, object_id: str) -> str:
    return f"jarvis:{region}:watch:{object_id}"


class RedisCache:
    def __init__(self, url: str, region: str) -> None:
        self.region = region
        self.client = aioredis.Redis.from_url(url, socket_timeout=5)

    async def put_many(self, views: Mapping[str, bytes]) -> None:
        """One round trip for a whole batch of changed objects."""
        if not views:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(index_key(self.region), dict.fromkeys(views, 0))
        for object_id, view in views.items():
            pipe.set(obj_key(self.region, object_id), view)
            pipe.publish(watch_channel(self.region, object_id), view)
            pipe.publish(changes_channel(self.region), object_id)
        await pipe.execute()

    async def get(self, object_id: str) -> bytes | None:
        return await self.client.get(obj_key(self.region, object_id))

    async def list_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        lo = f"({after}" if after else f"[{prefix}"
        hi = f"[{prefix}\xff"
        ids = await self.client.zrangebylex(index_key(self.region), lo, hi, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    async def close(self) -> None:
        await self.client.aclose()
