"""Operation ids the gateway hands out, which say where to look for the operation later.

`g<partition>.<ms>.<nonce><index>`: the ingress partition and the wall time (ms) of the write let
`GET /v1/ops/{op_id}` read a few seconds of one partition instead of the whole topic; the nonce
(random per request, or fixed by an Idempotency-Key) and the index make it unique. Pure.
"""

from __future__ import annotations

import re

_ID = re.compile(r"^g(\d{1,5})\.(\d{1,15})\.([0-9a-f]{8,64})$")


def prefix(partition: int, ms: int, nonce: str) -> str:
    """What every op id of one request and partition starts with; `make` appends the index."""
    return f"g{partition}.{ms}.{nonce}"


def make(partition: int, ms: int, nonce: str, index: int) -> str:
    return f"{prefix(partition, ms, nonce)}{index:x}"


def parse(op_id: str) -> tuple[int, int] | None:
    """(partition, ms) of a gateway op id, or None if it is not one."""
    m = _ID.match(op_id)
    return (int(m.group(1)), int(m.group(2))) if m else None
