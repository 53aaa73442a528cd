"""Replication and readiness gauges for Prometheus, measured by the console of each region.

MirrorMaker 2 and the digests have no exporter of their own here; the console already reads both for
its Regions page, so it also publishes them. The console of region R reports the lag of every mirror
*into* R (so each pair is measured once across the regions' consoles) and whether R's fold answers.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge

from connectors.regions import agreement, digests, mirror_lag
from jarvis.config import Settings
from jarvis.stack.workers import query_ready

MIRROR_LAG_S = Gauge("jarvis_mirror_lag_seconds", "Age of the oldest record not yet mirrored", ["source", "target"])
MIRROR_LAG_RECORDS = Gauge("jarvis_mirror_lag_records", "Records not yet mirrored", ["source", "target"])
AGREE = Gauge("jarvis_regions_agree", "1 when every region's state digests are equal", ["observer"])
DIFFERING = Gauge("jarvis_regions_differing_partitions", "Partitions whose digests differ", ["observer"])
FOLD_READY = Gauge("jarvis_fold_ready", "1 when the region's fold answers object reads", ["region"])

EVERY_S = 10.0  # two consumers per region per round: on 2 cores, cheap at this pace
log = logging.getLogger(__name__)


def measure(settings: Settings, region: str) -> None:
    FOLD_READY.labels(region).set(1 if query_ready(settings.region_config(region).query_url, settings) else 0)
    try:
        for lag in mirror_lag(settings, "console"):
            if lag.target == region:
                MIRROR_LAG_S.labels(lag.source, lag.target).set(lag.seconds)
                MIRROR_LAG_RECORDS.labels(lag.source, lag.target).set(lag.records)
    except Exception as e:  # noqa: BLE001 - Kafka down is what the lag alert is for; keep measuring
        log.warning("mirror lag not measured: %s", e)
    agree, differing = agreement(digests(settings, timeout=5))
    AGREE.labels(region).set(1 if agree else 0)
    DIFFERING.labels(region).set(len(differing))


async def measure_forever(settings: Settings, region: str) -> None:
    while True:
        await asyncio.to_thread(measure, settings, region)
        await asyncio.sleep(EVERY_S)
