"""Redis from Debian's packages, as a private cache instance under JARVIS_HOME on its own port."""

from __future__ import annotations

import shutil

from jarvis.config import Settings
from jarvis.stack.procs import Proc, StackError


def redis_proc(settings: Settings) -> Proc:
    server = shutil.which("redis-server")
    if server is None:
        raise StackError("Redis is not installed: run `make install` or `apt-get install redis-server`.")
    data = settings.home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    # A cache of state that lives in Kafka: no persistence, so restarts are instant.
    argv = [
        server, "--port", str(settings.redis_port), "--bind", settings.host, "--dir", str(data),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
    ]  # fmt: skip
    return Proc(name="redis", run_dir=settings.home, argv=argv)


def ping(settings: Settings) -> bool:
    # Lazy: only this command loads redis-py; every `jarvis` command imports this module.
    import redis

    return bool(redis.Redis.from_url(settings.redis_url, socket_timeout=1).ping())
