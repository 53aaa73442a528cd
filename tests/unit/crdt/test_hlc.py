"""The hybrid logical clock's block reservation (HLC.reserve, used by the HTTP gateway for a whole
request): the same timestamps as that many `now()` calls at one clock reading, and the clock goes
on after them, never backwards."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jarvis.crdt import HLC


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 70_000)), min_size=1, max_size=20))
def test_reserve_is_n_calls_of_now_at_one_reading(steps: list[tuple[int, int]]) -> None:
    wall = [1_732_520_000_000]
    a, b = HLC("n", clock=lambda: wall[0]), HLC("n", clock=lambda: wall[0])
    seen: list[int] = []
    for advance, n in steps:
        wall[0] += advance  # 0: the same millisecond again, where the logical counter counts on
        block = list(a.reserve(n))
        assert block == [b.now() for _ in range(n)]
        seen += block
        assert a.last == b.last
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert a.now() > (seen[-1] if seen else 0)
