"""The watch-stream bound (connectors/redis_watch.py) refuses before touching Redis, so the query
API can answer 503 before it has sent anything."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from connectors.redis_cache import CacheUnavailable
from connectors.redis_watch import TooManyWatchers, WatchHub


def test_past_the_maximum_a_watch_is_refused_before_any_redis_call() -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens: never used
        hub = WatchHub(client, "eu", limit=0)
        with pytest.raises(TooManyWatchers, match="maximum of 0 watch streams"):
            await hub.subscribe("ctr:a")
        assert hub.count == 0 and hub.watches == {}
        await client.aclose()

    asyncio.run(run())


def test_a_watch_that_cannot_reach_redis_is_refused_and_leaves_no_trace() -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        hub = WatchHub(client, "eu", limit=10)
        with pytest.raises(CacheUnavailable):
            await hub.subscribe("ctr:a")
        assert hub.count == 0 and hub.watches == {} and hub._subscribed == {}
        await client.aclose()

    asyncio.run(run())
