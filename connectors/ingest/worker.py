"""`jarvis worker ingest --region R`: the gateway's HTTP API on the role's web port and its MQTT
bridge to the region's Mosquitto broker, in one asyncio loop, writing through one IngressWriter."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from connectors.access_audit import AuditSink
from connectors.auth_view import AuthView
from connectors.http_limits import REQUEST_LIMITS
from connectors.http_tls import server_context
from connectors.ingest.http import IngestApi
from connectors.ingest.idempotency import IdempotencyStore
from connectors.ingest.mqtt import MqttBridge
from connectors.ingest.status import OpStatus
from connectors.ingest.writer import IngressWriter
from connectors.redis_cache import RedisCache
from jarvis.config import Settings
from jarvis.mqtt_sessions import configured_instances
from jarvis.roles import web_port
from jarvis.security.key_store import FileAuthStore
from jarvis.stack import mosquitto
from pipelines.loader import pipelines

# An idle keep-alive connection is closed after this; a request's body must arrive within
# BODY_READ_TIMEOUT_S (connectors/ingest/http.py).
KEEPALIVE_S = 15.0


def node_id(region: str, instance: int) -> str:
    return f"ingest-{region}-{instance}"


def run(settings: Settings, region: str, instance: int = 0) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(settings, region, instance))


async def serve(settings: Settings, region: str, instance: int) -> None:
    node = node_id(region, instance)
    writer = IngressWriter(settings, region, node, pipelines())
    idem = IdempotencyStore(settings.bootstrap(region), settings)
    cache = RedisCache(settings.redis_url, region)
    auth = AuthView(cache, settings.partitions, FileAuthStore(settings.home))
    auth.start()
    audit = AuditSink(writer.bootstrap, region, "ingest", settings)
    api = IngestApi(region, node, writer, auth, idem, OpStatus(writer.bootstrap, region, settings), audit)
    runner = web.AppRunner(
        api.app(), keepalive_timeout=KEEPALIVE_S, access_log=None, handle_signals=False, **REQUEST_LIMITS
    )
    await runner.setup()
    port = web_port(settings, "ingest", region, instance)
    site = web.TCPSite(runner, settings.host, port, reuse_address=True, ssl_context=server_context(settings))
    await site.start()
    r = settings.region_config(region)
    # Only the instances the stack runs keep a persistent MQTT session (jarvis/mqtt_sessions.py).
    configured = configured_instances()
    bridge = MqttBridge(
        writer, r.host, r.mqtt_port, region, instance, mosquitto.BRIDGE_USER, mosquitto.bridge_secret(settings), configured
    )
    logging.getLogger("jarvis.ingest").info("ingest %s: http://%s:%d, mqtt %s", node, settings.host, port, r.mqtt_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bridge_task = asyncio.create_task(bridge.run())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({bridge_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    bridge_task.cancel()
    await runner.cleanup()
    await auth.stop()
    await cache.close()
    audit.close()
    api.close()
    writer.close()
    idem.close()
    if bridge_task in done and bridge_task.exception() is not None:
        raise bridge_task.exception()  # type: ignore[misc]
