"""Prometheus metrics: every worker serves /metrics on its Faust web server, its event loop's
stalls and GC pauses among them (streams/loop_lag.py)."""

from __future__ import annotations

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.loop_lag import install_loop_lag


def install_metrics_page(app: faust.App) -> None:
    install_loop_lag(app, str(app.conf.id))

    @app.page("/metrics")
    async def metrics(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "ok", "app": app.conf.id})
