"""Jarvis Streams: geo-replicated, conflict-free shared state on Apache Kafka."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The SDK lives at the edge (connectors/) and pulls in confluent-kafka; import it only on use
    # so the pure core stays importable without Kafka.
    if name == "Client":
        from connectors.sdk import Client

        return Client
    raise AttributeError(name)
