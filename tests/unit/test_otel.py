"""connectors/otel.py with the real OpenTelemetry SDK and OTLP/HTTP exporter, against a receiver in
this test that decodes what arrives with the OTLP protobuf definitions (opentelemetry-proto)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.otel import Spans
from jarvis import tracecontext as tc


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Any]]]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            received.append((self.path, req))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_off_records_nothing_and_still_continues_the_trace() -> None:
    spans = Spans.exporting(None, "jarvis-verifier-eu")
    assert not spans.enabled
    parent = tc.new_root()
    ctx = spans.record("verify", parent, 1, 2)
    assert ctx.trace_id == parent.trace_id and ctx.span_id != parent.span_id


def test_spans_reach_the_collector_as_children_of_the_record_trace(collector) -> None:
    url, received = collector
    spans = Spans.exporting(url, "jarvis-verifier-eu")
    parent = tc.new_root()
    verify = spans.record("verify", parent, 1_000_000_000, 1_002_000_000, {"jarvis.region": "eu", "messaging.kafka.offset": 7})
    fold = spans.record("fold", verify, 1_003_000_000, 1_004_000_000)
    orphan = spans.record("fold", None, 5, 6)
    spans.shutdown()  # exports what is buffered
    assert received and all(path == "/v1/traces" for path, _ in received)
    got = {
        s.span_id.hex(): (s.name, s.trace_id.hex(), s.parent_span_id.hex(), s.start_time_unix_nano, s.end_time_unix_nano,
                          {a.key: a.value for a in s.attributes}, rs.resource)
        for _, req in received for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
    }  # fmt: skip
    assert set(got) == {verify.span_id, fold.span_id, orphan.span_id}
    name, trace_id, parent_id, start, end, attrs, resource = got[verify.span_id]
    assert (name, trace_id, parent_id, start, end) == ("verify", parent.trace_id, parent.span_id, 1_000_000_000, 1_002_000_000)
    assert attrs["jarvis.region"].string_value == "eu" and attrs["messaging.kafka.offset"].int_value == 7
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "jarvis-verifier-eu"
    assert got[fold.span_id][1:3] == (parent.trace_id, verify.span_id)
    assert got[orphan.span_id][2] == "" and orphan.trace_id != parent.trace_id
