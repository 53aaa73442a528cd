"""Jarvis Streams: geo-replicated, conflict-free shared state on Apache Kafka.

The producer SDK is at the edge: `from connectors.sdk import Client`.
"""

__version__ = "0.1.0"
