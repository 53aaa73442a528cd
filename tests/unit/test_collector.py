"""The garbage collector's settings a worker runs under (jarvis/collector.py), and the scale
benchmark's switch between them and CPython's own (benchmarks/scale.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from benchmarks.scale import DEFAULT_GC, use_collector
from jarvis import collector


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_a_worker_freezes_what_is_alive_and_uses_its_thresholds() -> None:
    gc.unfreeze()
    collector.tune()
    assert gc.get_threshold() == collector.THRESHOLDS
    assert gc.get_freeze_count() > 0


def test_the_benchmark_runs_as_a_worker_or_as_cpython_starts() -> None:
    use_collector("worker")
    assert gc.get_threshold() == collector.THRESHOLDS and gc.get_freeze_count() > 0
    use_collector("default")
    assert gc.get_threshold() == DEFAULT_GC and gc.get_freeze_count() == 0
