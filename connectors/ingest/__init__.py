"""The ingest gateway: HTTP and MQTT in, signed batches on jarvis.ops.ingress out (docs/internals.md)."""
