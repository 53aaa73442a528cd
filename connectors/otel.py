"""OpenTelemetry spans of a worker, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Off (the default) it is `Spans.off()`: `enabled` is False and callers skip building attributes, so
the pipeline pays nothing. On, each call records one finished span from the times the caller
measured, as the child of the record's traceparent (jarvis/tracecontext.py), and returns the
span's own context for the headers of the records it derives. The SDK's batch processor exports in
its own thread; a collector that is down loses spans, never operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jarvis.tracecontext import TraceParent, continued

AttrValue = str | int | float | bool


class Spans:
    def __init__(self, provider: Any | None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("jarvis-streams") if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @classmethod
    def off(cls) -> Spans:
        return cls(None)

    @classmethod
    def exporting(cls, endpoint: str | None, service: str) -> Spans:
        """Spans sent to `endpoint` (the collector's base URL: /v1/traces is appended as the OTLP
        specification says), or off when it is None."""
        if not endpoint:
            return cls.off()
        # Lazy: the OpenTelemetry SDK and its exporter only for workers that export spans.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": service})
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        return cls(provider)

    def record(self, name: str, parent: TraceParent | None, start_ns: int, end_ns: int,
               attributes: Mapping[str, AttrValue] | None = None) -> TraceParent:  # fmt: skip
        """One finished span, child of `parent` (a new trace without one); its context."""
        if self._tracer is None:
            return continued(parent)
        from opentelemetry import trace  # lazy with the SDK above; cached by Python after the first

        ctx = None
        if parent is not None:
            remote = trace.SpanContext(
                int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True,
                trace_flags=trace.TraceFlags(int(parent.flags, 16)),
            )  # fmt: skip
            ctx = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        span = self._tracer.start_span(name, context=ctx, start_time=start_ns, attributes=dict(attributes or {}))
        span.end(end_time=end_ns)
        sc = span.get_span_context()
        return TraceParent(f"{sc.trace_id:032x}", f"{sc.span_id:016x}", f"{int(sc.trace_flags):02x}")

    def shutdown(self) -> None:
        """Export what is buffered (a worker stopping)."""
        if self._provider is not None:
            self._provider.shutdown()
