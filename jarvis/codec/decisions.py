"""FoldDecisions records (schemas/FoldDecisions.avsc): a fold's verdicts on one message's
bounded-counter decrements and transfers, on jarvis.ops.decided."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from jarvis.codec.errors import CodecError
from jarvis.codec.single_object import decode, encode


@dataclass(slots=True)
class FoldDecisions:
    region: str
    partition: int  # ingress partition
    offset: int  # ingress offset
    accepted: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # index -> reason
    decided_at_ms: int = 0


def encode_decisions(d: FoldDecisions) -> bytes:
    return encode(
        "FoldDecisions",
        {
            "region": d.region,
            "partition": d.partition,
            "offset": d.offset,
            "accepted": list(d.accepted),
            "refused": list(d.refused),
            "reasons": list(d.refused.values()),
            "decided_at_ms": d.decided_at_ms or int(time.time() * 1000),
        },
    )


def decode_decisions(data: bytes) -> FoldDecisions:
    _, r = decode(data, "FoldDecisions")
    if len(r["refused"]) != len(r["reasons"]):
        raise CodecError(
            f"FoldDecisions: {len(r['refused'])} refused indexes but {len(r['reasons'])} reasons"
        )
    return FoldDecisions(
        r["region"], r["partition"], r["offset"], list(r["accepted"]),
        dict(zip(r["refused"], r["reasons"], strict=True)), r["decided_at_ms"],
    )  # fmt: skip
