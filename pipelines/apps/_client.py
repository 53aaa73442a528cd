"""The one place the use-case apps, their tests, demos and benchmarks construct an SDK client.

Trust, credentials and transport settings of the SDK change in one place here, not in every app.
"""

from __future__ import annotations

from typing import Any

from connectors.sdk import Client


def client(region: str, node_id: str, *, track_verdicts: bool = False, **kwargs: Any) -> Client:
    """An SDK client for `region` writing as `node_id`; sends with 1 ms linger unless told otherwise."""
    kwargs.setdefault("linger_ms", 1.0)
    return Client(region=region, node_id=node_id, track_verdicts=track_verdicts, **kwargs)
