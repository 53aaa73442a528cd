"""Every /watch stream of one worker on one Redis pub/sub connection, fanned out in-process.

One pub/sub connection per stream ran the pool out at ~40 streams (`MaxConnectionsError: Too many
connections`) and left the rest with `200 OK` and then nothing. Here a channel is subscribed once,
however many streams watch its object, and each stream reads its own queue. The number of streams
is bounded (JARVIS_MAX_WATCHERS): past it, `subscribe` refuses before the caller has answered
anything, so the client gets a 503 rather than a stream that never speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.redis_cache import CacheUnavailable, watch_channel
from jarvis.errors import JarvisError

log = logging.getLogger(__name__)

# Changes queued for one stream at most: a client that reads slower than its object changes is
# closed (it reconnects and gets the state afresh) rather than holding the worker's memory.
QUEUE_MAX = 1000
CLOSED = None  # put in a stream's queue when it must end (Redis went away, or it fell behind)


class TooManyWatchers(JarvisError, RuntimeError):
    """This worker already serves its maximum of watch streams."""


class Watch:
    """One stream's subscription: `changes` yields each new view of the object, CLOSED at the end."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.changes: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)

    def offer(self, data: bytes | None) -> None:
        try:
            self.changes.put_nowait(data)
        except asyncio.QueueFull:
            self.changes = _closed_queue()


def _closed_queue() -> asyncio.Queue[bytes | None]:
    q: asyncio.Queue[bytes | None] = asyncio.Queue(1)
    q.put_nowait(CLOSED)
    return q


class WatchHub:
    def __init__(self, client: aioredis.Redis, region: str, limit: int) -> None:
        self.client = client
        self.region = region
        self.limit = limit
        self.watches: dict[str, set[Watch]] = {}
        self._subscribed: dict[str, asyncio.Future[None]] = {}  # resolved once Redis confirms
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        # redis-py's PubSub opens its connection on the first command; concurrent first commands
        # each opened one (100 at once: confirmations arrived on connections nobody read).
        self._commands = asyncio.Lock()
        self.count = 0

    async def subscribe(self, object_id: str) -> Watch:
        """A stream of the object's changes, live once this returns (Redis has confirmed the
        subscription, so a state read afterwards misses no change). Raises TooManyWatchers or
        CacheUnavailable."""
        if self.count >= self.limit:
            raise TooManyWatchers(f"this worker already serves its maximum of {self.limit} watch streams")
        self.count += 1
        watch = Watch(watch_channel(self.region, object_id))
        self.watches.setdefault(watch.channel, set()).add(watch)
        try:
            confirmed = self._subscribed.get(watch.channel)
            if confirmed is None:
                confirmed = self._subscribed[watch.channel] = asyncio.get_running_loop().create_future()
                async with self._commands:
                    pubsub = self._connection()
                    await pubsub.subscribe(watch.channel)
                    self._start_reader(pubsub)
            await asyncio.wait_for(asyncio.shield(confirmed), timeout=5)
        except (RedisError, OSError, TimeoutError) as e:
            await self.unsubscribe(watch)
            raise CacheUnavailable(f"Redis pub/sub unavailable: {type(e).__name__}: {e}") from e
        except BaseException:
            await self.unsubscribe(watch)
            raise
        return watch

    async def unsubscribe(self, watch: Watch) -> None:
        self.count -= 1
        watchers = self.watches.get(watch.channel)
        if watchers is None:
            return
        watchers.discard(watch)
        if watchers:
            return
        del self.watches[watch.channel]
        self._subscribed.pop(watch.channel, None)
        if self._pubsub is not None:
            try:
                async with self._commands:
                    await self._pubsub.unsubscribe(watch.channel)
            except (RedisError, OSError) as e:  # the reader notices and ends every stream
                log.debug("unsubscribe %s: %r", watch.channel, e)

    def _connection(self) -> Any:
        if self._pubsub is None:
            self._pubsub = self.client.pubsub()
        return self._pubsub

    def _start_reader(self, pubsub: Any) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(pubsub))

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is None:
                    continue
                channel = msg["channel"].decode()
                if msg["type"] == "subscribe":
                    confirmed = self._subscribed.get(channel)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
                elif msg["type"] == "message":
                    for watch in self.watches.get(channel, ()):
                        watch.offer(msg["data"])
        except (RedisError, OSError, RuntimeError) as e:
            log.warning("watch streams of %s lost Redis (%r): ending them", self.region, e)
        finally:
            self._drop(pubsub)

    def _drop(self, pubsub: Any) -> None:
        """End every stream and forget the connection: the next watch starts a fresh one."""
        if self._pubsub is pubsub:
            self._pubsub = None
        for confirmed in self._subscribed.values():
            if not confirmed.done():
                confirmed.set_exception(CacheUnavailable("Redis pub/sub connection lost"))
        self._subscribed.clear()
        for watchers in self.watches.values():
            for watch in watchers:
                watch.offer(CLOSED)
        asyncio.ensure_future(_close(pubsub))


async def _close(pubsub: Any) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()
