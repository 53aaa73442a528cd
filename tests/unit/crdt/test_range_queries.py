"""Range and aggregation arguments of a time series: a clear RangeQueryError, never an arithmetic one."""

from __future__ import annotations

import math

import pytest

from jarvis.crdt import TimeSeries
from jarvis.crdt.timeseries import MAX_BUCKETS, RangeQueryError, check_bounds, check_window

T0 = 1_732_520_000.0


@pytest.fixture
def series() -> TimeSeries:
    ts = TimeSeries("n")
    for i in range(10):
        ts.append_data_point(T0 + i * 60, float(i))
    return ts


@pytest.mark.parametrize(
    ("window", "says"),
    [
        (1e-300, "too small for timestamps like"),  # was OverflowError: float infinity to integer
        (math.inf, "finite number of seconds above 0, got inf"),  # was 200 with null buckets
        (math.nan, "got nan"),
        (-1.0, "got -1.0"),
        (0.0, "got 0.0"),
        (1e-3, "into 540001 windows; at most 100000"),
    ],
)
def test_hostile_windows_raise_a_range_query_error(series: TimeSeries, window: float, says: str) -> None:
    with pytest.raises(RangeQueryError, match="window") as e:
        series.aggregate(-math.inf, math.inf, window, "mean")
    assert says in str(e.value)


def test_range_query_error_is_a_value_error() -> None:
    # The query API answers every ValueError of a range with 400 and its message.
    assert issubclass(RangeQueryError, ValueError)


@pytest.mark.parametrize(("frm", "to"), [(math.nan, 1.0), (0.0, math.nan), (5.0, 1.0)])
def test_nan_or_reversed_bounds_are_refused(series: TimeSeries, frm: float, to: float) -> None:
    with pytest.raises(RangeQueryError):
        series.range(frm, to)
    with pytest.raises(RangeQueryError):
        series.aggregate(frm, to, 60, "sum")


def test_the_bucket_bound_counts_only_the_points_in_range(series: TimeSeries) -> None:
    # 1 ms windows over two points 60 s apart would be 60,001 windows: allowed; over all 540 s, not.
    got = series.aggregate(T0, T0 + 60, 1e-3, "count")
    assert [b["count"] for b in got] == [1, 1]
    assert series.aggregate(T0 + 1, T0 + 2, 1e-9, "count") == []  # nothing in range: nothing to cut


def test_huge_windows_and_infinite_bounds_still_answer(series: TimeSeries) -> None:
    assert series.aggregate(-math.inf, math.inf, 1e308, "count") == [{"start": 0.0, "value": 10.0, "count": 10}]
    assert len(series.range(-math.inf, math.inf)) == 10
    assert series.range(math.inf, math.inf) == []


def test_check_window_edges() -> None:
    check_window(1.0, 0.0, float(MAX_BUCKETS - 1))  # exactly MAX_BUCKETS windows
    with pytest.raises(RangeQueryError, match="into 100001 windows"):
        check_window(1.0, 0.0, float(MAX_BUCKETS))
    check_window(60.0)  # no points: only the window itself is checked
    check_bounds(-math.inf, math.inf)
