"""W3C traceparent: what is written parses back, children keep the trace, malformed is ignored."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jarvis import tracecontext as tc

trace_ids = st.text("0123456789abcdef", min_size=32, max_size=32).filter(lambda s: set(s) != {"0"})
span_ids = st.text("0123456789abcdef", min_size=16, max_size=16).filter(lambda s: set(s) != {"0"})
flags = st.sampled_from(["00", "01"])


@given(trace_ids, span_ids, flags)
def test_a_header_parses_back_to_itself(trace_id: str, span_id: str, f: str) -> None:
    tp = tc.TraceParent(trace_id, span_id, f)
    assert tc.parse(tp.header()) == tp
    assert tc.parse(tp.header().encode()) == tp
    assert tc.from_headers([("other", b"x"), (tc.HEADER, tp.header().encode())]) == tp
    assert tc.from_headers({tc.HEADER: tp.header()}) == tp


@given(trace_ids, span_ids)
def test_a_child_keeps_the_trace_and_gets_a_span_of_its_own(trace_id: str, span_id: str) -> None:
    parent = tc.TraceParent(trace_id, span_id)
    child = parent.child()
    assert child.trace_id == trace_id and child.flags == parent.flags
    assert len(child.span_id) == 16 and child.span_id != "0" * 16
    assert tc.parse(child.header()) == child
    assert tc.continued(parent).trace_id == trace_id
    assert tc.continued(None).trace_id != trace_id  # a new trace


def test_ids_are_never_all_zero_even_when_the_random_source_says_so() -> None:
    draws = iter([b"\0" * 16, b"\1" * 16, b"\0" * 8, b"\2" * 8])
    root = tc.new_root(lambda n: next(draws))
    assert root == tc.TraceParent("01" * 16, "02" * 8)


def test_malformed_headers_are_ignored() -> None:
    good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert tc.parse(good) == tc.TraceParent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "01")
    for bad in [
        None, "", "garbage", good.upper(), good[:-1], good + "-extra",  # version 00 has exactly 4 fields
        "ff" + good[2:], "00-" + "0" * 32 + "-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",
        b"\xff\xfe", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
    ]:  # fmt: skip
        assert tc.parse(bad) is None, bad
    # A later version may append fields: the four known ones still count.
    assert tc.parse("01" + good[2:] + "-what-comes-next") == tc.parse(good)
    assert tc.from_headers(None) is None and tc.from_headers([]) is None and tc.from_headers([("x", b"1")]) is None
