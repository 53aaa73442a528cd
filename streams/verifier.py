"""Verifier worker: consumer group on jarvis.ops.ingress, gate to jarvis.ops or jarvis.ops.rejected.

Accepted operations leave as one VerifiedBatch per ingress message, on the same partition number
(partition = murmur2(object id) everywhere): the message itself, untouched, with the indexes of the
accepted operations; operation i's dot is (region, ingress partition, ingress offset, i).
Reprocessing an ingress record after a crash yields the same dots, so the fold recognises the
duplicate. Every rejected operation is written with all its reasons; nothing is dropped silently.
"""

from __future__ import annotations

import time

import faust
from prometheus_client import Counter

from jarvis import topics
from jarvis.codec import encode_rejected, encode_verified
from jarvis.config import Settings
from jarvis.gate import Gate
from jarvis.ops import RejectedOperation
from jarvis.security.keys import TrustStore
from pipelines.loader import pipelines
from streams.app import make_app
from streams.metrics import install_metrics_page

OPS_ACCEPTED = Counter("jarvis_verifier_accepted_total", "Operations accepted by the verifier", ["region"])
OPS_REJECTED = Counter(
    "jarvis_verifier_rejected_total", "Operations rejected by the verifier", ["region", "reason"]
)


def reason_label(reason: str) -> str:
    """A low-cardinality metric label: the reason's words before any detail."""
    return reason.split(":")[0].split("(")[0].strip()[:48]


def build(settings: Settings, region: str, instance: int = 0) -> faust.App:
    app = make_app(settings, "verifier", region, instance)
    ingress = app.topic(topics.INGRESS, key_type=bytes, value_type=bytes)
    ops_out = app.topic(topics.OPS, key_type=bytes, value_type=bytes)
    rejected_out = app.topic(topics.REJECTED, key_type=bytes, value_type=bytes)
    gate = Gate(region, pipelines(), TrustStore(settings.keys_dir))
    install_metrics_page(app)

    @app.agent(ingress)
    async def verify(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            now_ms = int(time.time() * 1000)
            result = gate.check(event.value or b"", msg.partition, msg.offset, now_ms)
            if result.accepted:
                value = encode_verified(
                    region,
                    msg.partition,
                    msg.offset,
                    [a.index for a in result.accepted],
                    [a.confidence for a in result.accepted],
                    event.value or b"",
                )
                await ops_out.send(key=event.key, value=value, partition=msg.partition)
                OPS_ACCEPTED.labels(region).inc(len(result.accepted))
            for rej in result.rejected:
                record = RejectedOperation.from_gate(
                    original=event.value or b"",
                    reasons=rej.reasons,
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    index=rej.index,
                    op=rej.op,
                    region=region,
                )
                key = (rej.op.object_id if rej.op else f"raw:{msg.partition}:{msg.offset}").encode()
                await rejected_out.send(key=key, value=encode_rejected(record))
                for r in rej.reasons:
                    OPS_REJECTED.labels(region, reason_label(r)).inc()

    return app
